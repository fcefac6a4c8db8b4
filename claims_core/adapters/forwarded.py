"""Whose ``X-Forwarded-For`` / ``X-Forwarded-Proto`` the server believes: only a proxy's that the
operator declared (``CLAIMS_TRUSTED_PROXIES``, infra/config.py), as the README promises.

``streamlit run app.py`` serves the ``st.App`` with uvicorn, whose proxy-header middleware, on by
default, takes both headers from any connection from 127.0.0.1 or ::1 (``FORWARDED_ALLOW_IPS``):
a client's address and scheme could be written by anyone who reaches the app through a local
proxy that passes the headers on, or from the host itself. Streamlit builds uvicorn's settings
before it imports ``app.py``, so the one place left is the moment uvicorn wraps the app it just
imported: :func:`install` (called by ``app.py``) makes that wrapping step ask the operator's
setting. With ``CLAIMS_TRUSTED_PROXIES`` unset or 0 the headers are ignored (the connection's
address and scheme count); with N > 0 uvicorn's middleware stays, trusting the proxy at
``FORWARDED_ALLOW_IPS`` (default: this host), and ``domain.identifiers.client_address`` reads the
address N hops back.
"""
from __future__ import annotations

from ..infra import config


def proxy_headers_middleware(original):
    """uvicorn's proxy-header middleware, applied only when the operator trusts a proxy."""

    def wrap(app, *args, **kwargs):
        if config.trusted_proxies() <= 0:
            return app  # X-Forwarded-* are left alone: not believed, never acted on
        return original(app, *args, **kwargs)

    wrap.claims_trusted_proxies = True
    return wrap


def install() -> None:
    """Make uvicorn (in this process) believe forwarded headers only when
    ``CLAIMS_TRUSTED_PROXIES`` > 0. Safe to call more than once; a no-op without uvicorn."""
    try:
        import uvicorn.config as uvicorn_config
    except ImportError:  # served by another ASGI server: its own settings decide
        return
    current = getattr(uvicorn_config, "ProxyHeadersMiddleware", None)
    if current is None or getattr(current, "claims_trusted_proxies", False):
        return
    uvicorn_config.ProxyHeadersMiddleware = proxy_headers_middleware(current)
