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
