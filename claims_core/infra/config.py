"""Where the data lives. Everything a deployment changes comes from the environment."""
from __future__ import annotations

import logging
import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]  # claims_core/infra/config.py -> the repo


def data_dir() -> Path:
    """Directory for the SQLite database and backups (``CLAIMS_DATA_DIR``, default ``data/``)."""
    return Path(os.environ.get("CLAIMS_DATA_DIR") or PROJECT_DIR / "data")


def database_url() -> str:
    """``DATABASE_URL`` if set, else SQLite at ``data/claims.db``."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{data_dir() / 'claims.db'}"


def trusted_proxies() -> int:
    """How many reverse proxies in front of the app add to ``X-Forwarded-For``
    (``CLAIMS_TRUSTED_PROXIES``, default 0: the header is ignored)."""
    raw = os.environ.get("CLAIMS_TRUSTED_PROXIES", "").strip()
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:  # the safe reading: trust no header (stricter throttling, never looser)
        logging.getLogger(__name__).warning(
            "CLAIMS_TRUSTED_PROXIES=%r is not a whole number; X-Forwarded-For is ignored", raw)
        return 0


# Credentials of the live feeds. Each is read from the environment, or else from the same name in
# ``.streamlit/secrets.toml`` (Streamlit's secrets file; read here without importing Streamlit).
WEBHOOK_SECRETS = ("SHOPIFY_WEBHOOK_SECRET", "TRACK17_WEBHOOK_KEY", "EASYPOST_WEBHOOK_SECRET")


def _secrets_file() -> dict:
    import tomllib

    path = Path(os.environ.get("CLAIMS_SECRETS_FILE") or PROJECT_DIR / ".streamlit" / "secrets.toml")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        logging.getLogger(__name__).warning("can't read %s: %s", path, e)
        return {}


def secret(name: str) -> str:
    """A credential by name ("" when not configured): the environment first, then secrets.toml."""
    value = os.environ.get(name, "").strip()
    if value:
        return value
    raw = _secrets_file().get(name, "")
    return raw.strip() if isinstance(raw, str) else ""
