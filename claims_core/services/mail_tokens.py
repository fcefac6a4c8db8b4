"""The key that signs reply addresses, and a claim's reply address (``CLAIMS_REPLY_TO`` + token).

The key is made by migration 0017 and kept in ``store_secrets`` (every instance signs alike);
a database made some other way gets one on first use. The rules (token format, matching) live in
``domain/email_replies.py``.
"""
from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain import email_replies
from ..infra import config
from ..infra.models import StoreSecret

REPLY_KEY = "reply_token_key"


def reply_base() -> str:
    """The shop's reply mailbox, ``CLAIMS_REPLY_TO`` (env or secrets.toml); "" when not set."""
    return config.secret("CLAIMS_REPLY_TO")


def reply_key(s: Session) -> bytes:
    row = s.get(StoreSecret, REPLY_KEY)
    if row is None:
        try:
            with s.begin_nested():
                s.add(StoreSecret(name=REPLY_KEY, value=secrets.token_hex(32)))
        except IntegrityError:  # another transaction made it first
            pass
        row = s.get(StoreSecret, REPLY_KEY)
    return row.value.encode()


def reply_to_for(s: Session, claim_id: int | None) -> str:
    """The Reply-To of a mail about this claim ("" without a claim or a configured mailbox)."""
    base = reply_base()
    if claim_id is None or not base:
        return ""
    return email_replies.reply_address(base, email_replies.reply_token(claim_id, reply_key(s)))
