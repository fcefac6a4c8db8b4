"""Where the data lives. Everything a deployment changes comes from the environment."""
from __future__ import annotations

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
