"""The domain: every rule of the product, in pure Python (no database session, no Streamlit).

Each rule has one home, a module named after what it is about:

- ``vocabulary``     every enum (issue types, statuses, resolutions, denial reasons, audit
  actions, roles) with its labels;
- ``errors``         refusals, each with a stable ``ErrorCode``; ``messages`` words for people as
  catalog templates (``Msg``), never built in code;
- ``currencies``     how many decimals each currency's minor unit has; ``money`` amounts in those
  integer minor units, the store-credit bonus, "never more than was paid";
- ``windows``        the filing window and every other deadline or waiting period; ``durations``
  how long things took, in the buckets analytics reports;
- ``eligibility``    ``evaluate(order, shipment, items, now, settings)``: can this shipment take a
  claim, for which issues, items and evidence;
- ``resolutions``    what a customer may ask for and what a reshipment needs from stock;
  ``signature`` how a claim is signed;
- ``lifecycle``      the action table of a claim's life; ``auto_approval`` when an owner's rule
  approves a claim;
- ``identifiers``    order numbers, tracking numbers, emails and the look-up key; ``order_link`` the
  signed link to an order in the shop's own emails;
- ``orders``         an order as a source tells it (frozen snapshots) and the rules for taking it in;
- ``tracking``       one shape for every carrier feed, and what a shipment's checkpoints mean;
- ``disputes``       what a payment dispute (chargeback) on an order means for its claims;
- ``recoveries``     claiming the money back from the carrier: its action table;
  ``carrier_claims`` each carrier's filing window, liability limit and documents;
- ``pricing``        is the protection priced right (arithmetic on one segment's totals);
- ``privacy``        how long each kind of personal data is kept, and a data request's deadline;
- ``email_replies``  the reply address that names a claim, and which inbound mail is a reply;
- ``webhook_targets`` where outbound webhooks may go (never into the shop's own network);
- ``text``           what people type (limits, control characters) and the one reader of text and
  times from files and payloads; ``csv_safe`` the one CSV writer.

The names below are re-exported so callers can write ``domain.filing_deadline``; each is defined
once, in its module.
"""
from .csv_safe import safe_cell, write_csv  # noqa: F401
from .eligibility import (MAX_PHOTO_BYTES, MEGABYTE, PHOTO_REQUIRED_ISSUES, Eligibility, available_issue_types,  # noqa: F401
                          check_has_shipments, check_issue_available, check_issue_type, check_item_quantities,
                          check_order_not_cancelled, check_photo_count, check_protected,
                          check_protection_covers_shipment, deadline_for, evaluate, evaluate_order,
                          claimed_items, explain_issue_unavailable, photos_required,
                          remaining_quantity, reply_photo_limit)
from .errors import (CHOOSE_A_SHIPMENT, LOOKUP_FAILED, PHOTO_NOT_IN_CLAIM, AlreadyClaimed, AuthError,  # noqa: F401
                     ClaimNotFound, ClaimRuleError, ErrorCode, EvidenceRequired, InvalidInput,
                     IssueNotAvailable, NotProtected, NotShipped, OrderCancelled, OrderNotFound,
                     PhotoNotFound, PhotosRejected,
                     QuantityError, ResolutionUnavailable, SignatureInvalid, StaleClaim,
                     TooManyAttempts, WindowClosed)
from .identifiers import (emails_match, lookup_target, normalize_email,  # noqa: F401
                          normalize_order_number, normalize_tracking)
from .lifecycle import (ACTIONS, TRANSITIONS, Action, Actor, IllegalTransition,  # noqa: F401
                        allows, available_actions, can_transition)
from .money import (check_bonus, check_resolution_amounts, minor_from_amount,  # noqa: F401
                    check_partial_reason, credit_with_bonus, currency_exponent, is_partial, decimal_amount,
                    format_minor, unit_paid_minor)
from .resolutions import (ResolutionOption, approval_can_be_undone,  # noqa: F401
                          check_resolution_choice,
                          needed_stock, resolution_options, stock_key, stock_shortfall)
from .signature import (ACCURACY_STATEMENT, CANNOT_DRAW_STATEMENT, check_signature,  # noqa: F401
                        clean_signature_name, drawn_signature_required, records_cannot_draw,
                        signature_modes, typed_needs_cannot_draw)
from .tracking import (Checkpoint, ProofOfDelivery, TrackingUpdate,  # noqa: F401
                       hold_reason, past_expected_delivery, summarise)
from .text import MAX_COMMENT_CHARS, clean_comment, required_text, strip_controls  # noqa: F401
from .vocabulary import (APPROVED, AWAITING_SHOP, CLOSED,  # noqa: F401
                         COVERING_STATUSES, DECIDED_STATUSES, DENIAL_EXPLANATIONS, DENIAL_LABELS,
                         DENIED, GRANTED_STATUSES, IN_REVIEW, ISSUE_TYPES, ITEM, ITEM_ISSUES,
                         NEEDS_INFO, OPEN_STATUSES, PERMISSIONS, RESOLUTION_ASKED,
                         RESOLUTION_LABELS, RESOLVED, ROLES, SHIPMENT_STATUS_LABELS,
                         SHIPMENT_STATUSES, SHIPPING, STATUS_LABELS, STATUSES, SUBMITTED,
                         AuditAction, ClaimStatus, DenialReason, IssueCategory, IssueType,
                         PhotoVerdict, ResolutionKind, Role, ShipmentStatus, SignatureKind, can)
from .windows import (DRAFT_DAYS, check_filing_window, days_without_scan,  # noqa: F401
                      draft_expires_at, filing_deadline, format_date, format_moment,
                      local_date, local_day,
                      past_response_target, response_overdue_before, store_zone,
                      tracking_stalled, waiting_step, within_window)
