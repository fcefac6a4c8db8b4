"""Where the data lives, and every setting a deployment changes: the environment first, then the
same name in ``.streamlit/secrets.toml`` (``CLAIMS_SECRETS_FILE`` points elsewhere), so the web app,
its background jobs, ``worker`` and ``tick`` all see the same configuration."""
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


_SECRETS_CACHE: dict = {}


def _secrets_file() -> dict:
    import tomllib

    path = Path(os.environ.get("CLAIMS_SECRETS_FILE") or PROJECT_DIR / ".streamlit" / "secrets.toml")
    try:
        stamp = path.stat()
        key = (str(path), stamp.st_mtime_ns, stamp.st_size)
        if key not in _SECRETS_CACHE:  # read again only when the file changed
            with path.open("rb") as f:
                _SECRETS_CACHE.clear()
                _SECRETS_CACHE[key] = tomllib.load(f)
        return _SECRETS_CACHE[key]
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
    if isinstance(raw, bool):  # TOML's true/false read as the environment's 1/0
        return "1" if raw else "0"
    if isinstance(raw, (int, float)):  # CLAIMS_SMTP_PORT = 587 in secrets.toml
        return str(raw)
    return raw.strip() if isinstance(raw, str) else ""


setting = secret  # a plain setting is read the same way as a credential


def _flag(name: str, default: bool) -> bool:
    raw = setting(name).lower()
    if not raw:
        return default
    return raw not in ("0", "false", "no", "off")


# --- mail -----------------------------------------------------------------------------------------

def smtp_settings() -> dict | None:
    """The SMTP server to deliver the outbox through (None: nothing is sent, the Outbox staff page
    shows the queue). ``CLAIMS_SMTP_HOST``, ``_PORT`` (587), ``_STARTTLS`` (1), ``_USER``,
    ``_PASSWORD``, ``_FROM``, ``_TIMEOUT`` (20 s)."""
    host = setting("CLAIMS_SMTP_HOST")
    if not host:
        return None

    def number(name, default, kind):
        raw = setting(name)
        try:
            return kind(raw) if raw else default
        except ValueError:
            logging.getLogger(__name__).warning("%s=%r is not a number; using %s", name, raw, default)
            return default

    return {"host": host, "port": number("CLAIMS_SMTP_PORT", 587, int),
            "starttls": _flag("CLAIMS_SMTP_STARTTLS", True),
            "user": setting("CLAIMS_SMTP_USER"), "password": setting("CLAIMS_SMTP_PASSWORD"),
            "sender": setting("CLAIMS_SMTP_FROM") or "claims@localhost",
            "timeout": number("CLAIMS_SMTP_TIMEOUT", 20.0, float)}


def mail_domain() -> str:
    """The shop's mail domain, for the Message-ID of every email: the domain of
    ``CLAIMS_REPLY_TO`` if set, else of ``CLAIMS_SMTP_FROM``, else ``claims.local``."""
    from email.utils import parseaddr

    for name in ("CLAIMS_REPLY_TO", "CLAIMS_SMTP_FROM"):
        addr = parseaddr(setting(name))[1]
        domain = addr.rpartition("@")[2].strip().strip(".").lower() if "@" in addr else ""
        if domain and all(c.isalnum() or c in "-." for c in domain):
            return domain
    return "claims.local"


def imap_configured() -> bool:
    """Whether an IMAP mailbox for customers' replies is set (``CLAIMS_IMAP_HOST``)."""
    return bool(setting("CLAIMS_IMAP_HOST"))


def track17_configured() -> bool:
    """Whether 17TRACK is set up (its API key, ``TRACK17_API_KEY`` or ``TRACK17_WEBHOOK_KEY``)."""
    return bool(setting("TRACK17_API_KEY") or setting("TRACK17_WEBHOOK_KEY"))


def public_url() -> str:
    """Where the app is reached from outside, for links in mails (``CLAIMS_PUBLIC_URL``)."""
    return (setting("CLAIMS_PUBLIC_URL") or "http://localhost:8501").rstrip("/")


def pseudo_language_enabled() -> bool:
    """The tests' pseudo-language (``CLAIMS_PSEUDO_LANGUAGE=1``)."""
    return setting("CLAIMS_PSEUDO_LANGUAGE") == "1"


def api_rate_limit(default: str) -> str:
    """The claims API's per-key rate limit (``CLAIMS_API_RATE_LIMIT``, e.g. ``120/minute``)."""
    return setting("CLAIMS_API_RATE_LIMIT") or default


def shopify_base_url() -> str | None:
    """Another server for the Shopify Admin client (``CLAIMS_SHOPIFY_BASE_URL``; the tests' fake)."""
    return setting("CLAIMS_SHOPIFY_BASE_URL") or None


# --- background work --------------------------------------------------------------------------------

def background_enabled() -> bool:
    """Whether the web process runs the background jobs itself (``CLAIMS_BACKGROUND``, default on;
    ``off`` for those who run ``python -m claims_core worker`` or ``tick`` from cron)."""
    return _flag("CLAIMS_BACKGROUND", True)


def _whole_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return max(0, int(raw)) if raw else default
    except ValueError:
        logging.getLogger(__name__).warning("%s=%r is not a whole number of seconds; using %d",
                                            name, raw, default)
        return default


def db_connect_timeout() -> int:
    """Seconds to wait for PostgreSQL to answer a new connection (``CLAIMS_DB_CONNECT_TIMEOUT``,
    default 5; libpq counts at least 2): a host that never answers can't hang a page or a job."""
    return _whole_seconds("CLAIMS_DB_CONNECT_TIMEOUT", 5) or 5


def db_statement_timeout() -> int:
    """Seconds one PostgreSQL statement may run before the server cancels it
    (``CLAIMS_DB_STATEMENT_TIMEOUT``, default 120; 0 turns it off)."""
    return _whole_seconds("CLAIMS_DB_STATEMENT_TIMEOUT", 120)


def metrics_token() -> str:
    """The bearer token ``/metrics`` asks for (``CLAIMS_METRICS_TOKEN``; unset: no ``/metrics``)."""
    return secret("CLAIMS_METRICS_TOKEN")
