"""Deterministic demo data: a store with a year of orders and claims in every state.

The same seed and the same day give the same data. Dates are laid out relative to today so the
demo orders named in the README stay in (or out of) their filing window whenever it is run.
Claims are filed and decided through the real services, so they obey every rule and carry their
events.
"""
from __future__ import annotations

import io
import json
import random
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from PIL import Image, ImageDraw, ImageFilter
from sqlalchemy import Engine, func, select

from .. import domain
from ..infra import rollups
from ..infra.db import read_session, utcnow, write_session
from ..infra.models import (LineItem, Order, Shipment, ShipmentItem, Stock, ensure_settings_row,
                            settings_row)
from ..services import customer, decisions, order_views
from ..services.accounts import add_user
from ..infra.photos import ProcessedPhoto, process_photo
from . import demo_tracking

SEED = 20261121


@dataclass(frozen=True)
class DemoOrder:
    number: str
    email: str
    what: str


DEMO_ORDERS = (
    DemoOrder("5001", "jamie.rivera@example.com",
              "protected, in the window, two shipments (one delivered, one still in transit)"),
    DemoOrder("5002", "casey.nguyen@example.com", "not protected"),
    DemoOrder("5003", "morgan.lee@example.com", "protected, but the filing window has closed"),
    DemoOrder("5004", "taylor.brooks@example.com",
              "has a claim waiting for the customer's reply (see View My Claim)"),
    DemoOrder("5005", "avery.patel@example.com",
              "protection was added after the parcel had shipped"),
)

PRODUCTS = [
    ("TR2-NV-10", "Trail Runner 2 - Navy / 10", 12900),
    ("TR2-BK-9", "Trail Runner 2 - Black / 9", 12900),
    ("WJ-L", "Waxed Jacket / L", 24900),
    ("WJ-M", "Waxed Jacket / M", 24900),
    ("SOCK-CH-M", "Merino Crew Sock - Charcoal / M", 1800),
    ("TOTE-CNV", "Canvas Tote", 3450),
    ("MUG-HT", "Hand-thrown Mug", 2800),
    ("POUR-SET", "Ceramic Pour-Over Set", 6200),
    ("APRON-RST", "Linen Apron — Rust", 4500),
    ("LAMP-BR", "Brass Desk Lamp", 8900),
    ("BOTTLE-SS", "Steel Water Bottle", 3200),
    ("BLANKET-WL", "Wool Throw Blanket", 11500),
]
CARRIERS = [("UPS", 0.35), ("USPS", 0.30), ("FedEx", 0.20), ("DHL Express", 0.10),
            ("Canada Post", 0.05)]
METHODS = ["Standard Shipping", "Express", "Free Shipping", "UPS Ground", "Priority Mail"]
DESTINATIONS = [("US", "CA", "Los Angeles"), ("US", "NY", "Brooklyn"), ("US", "TX", "Austin"),
                ("US", "IL", "Chicago"), ("US", "WA", "Seattle"), ("US", "FL", "Miami"),
                ("CA", "ON", "Toronto"), ("CA", "BC", "Vancouver"), ("GB", "", "London"),
                ("DE", "", "Berlin")]
FIRST = ["Sam", "Alex", "Jordan", "Riley", "Chris", "Pat", "Jamie", "Robin", "Drew", "Quinn",
         "Maria", "Zoë", "Émile", "Li", "Nguyen", "Aisha", "Omar", "Sofia", "Mateo", "Hana"]
LAST = ["Jones", "Smith", "O'Brien", "García", "Müller", "Chen", "Khan", "Rossi", "Kim", "Silva"]

STAFF = "staff:owner"


def _tracking(rng: random.Random, carrier: str) -> str:
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    return {"UPS": "1Z" + digits(16), "USPS": "94" + digits(20), "FedEx": digits(12),
            "DHL Express": digits(10), "Canada Post": digits(16)}[carrier]


def _pick_carrier(rng: random.Random) -> str:
    return rng.choices([c for c, _ in CARRIERS], [w for _, w in CARRIERS])[0]


def make_photo(seed: int, width: int = 960, height: int = 720) -> bytes:
    """A generated photo of a parcel with damage, as JPEG bytes (different per seed)."""
    rng = random.Random(seed)
    bg = tuple(rng.randint(150, 220) for _ in range(3))
    img = Image.new("RGB", (width, height), bg)
    d = ImageDraw.Draw(img)
    for _ in range(40):  # floor texture
        x, y = rng.randrange(width), rng.randrange(height)
        d.line([(x, y), (x + rng.randint(-80, 80), y + rng.randint(-10, 10))],
               fill=tuple(max(0, c - rng.randint(10, 40)) for c in bg), width=2)
    bx, by = rng.randint(80, 240), rng.randint(80, 200)
    bw, bh = rng.randint(380, 560), rng.randint(260, 380)
    box = (rng.randint(150, 190), rng.randint(110, 140), rng.randint(60, 90))
    d.rectangle([bx, by, bx + bw, by + bh], fill=box, outline=(90, 60, 30), width=4)
    d.rectangle([bx + bw // 2 - 30, by, bx + bw // 2 + 30, by + bh], fill=(200, 180, 140))
    cx, cy = bx + rng.randint(40, bw - 40), by + rng.randint(40, bh - 40)
    points = [(cx + rng.randint(-90, 90), cy + rng.randint(-70, 70)) for _ in range(7)]
    d.polygon(points, fill=(60, 40, 25))
    for _ in range(5):
        d.line([(cx, cy), (cx + rng.randint(-150, 150), cy + rng.randint(-120, 120))],
               fill=(40, 25, 15), width=3)
    img = img.filter(ImageFilter.SMOOTH)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def make_signature(name: str = "Demo") -> bytes:
    """A drawn-looking signature PNG (transparent background, dark ink)."""
    img = Image.new("RGBA", (600, 200), (255, 255, 255, 0))
    d = ImageDraw.Draw(img)
    rng = random.Random(name)
    x, y = 40, 110
    pts = []
    for _ in range(24):
        x += rng.randint(12, 24)
        y = 110 + rng.randint(-45, 45)
        pts.append((x, y))
    d.line(pts, fill=(20, 20, 60, 255), width=4, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class _PhotoSource:
    """Fresh photos for each demo claim, and now and then one reused from an earlier claim (the
    staff side flags reused evidence)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed + 77)
        self.n = 0
        self.made: list[ProcessedPhoto] = []

    def take(self, k: int) -> list[ProcessedPhoto]:
        out = []
        for _ in range(k):
            if self.made and self.rng.random() < 0.03:
                out.append(self.rng.choice(self.made))
                continue
            self.n += 1
            p = process_photo(make_photo(self.n * 7919, 640, 480), f"IMG_{4100 + self.n}.jpg")
            self.made.append(p)
            out.append(p)
        return out


def has_data(engine: Engine) -> bool:
    with read_session(engine) as s:
        return (s.scalar(select(func.count()).select_from(Order)) or 0) > 0


def generate(engine: Engine, *, orders: int = 2400, seed: int = SEED, now: datetime | None = None,
             create_staff: bool = True, log=print) -> dict:
    """Fill an empty, migrated database with demo data. Returns what was made (and staff logins).
    The analytics roll-ups are worked out once at the end, not kept step by step (4× faster)."""
    with rollups.paused():
        out = _generate(engine, orders, seed, now or utcnow(), create_staff, log)
    rollups.rebuild(engine)
    return out


def _generate(engine: Engine, orders: int, seed: int, now: datetime, create_staff: bool,
              log) -> dict:
    rng = random.Random(seed)
    out: dict = {"orders": 0, "claims": 0, "logins": {}}
    with write_session(engine) as s:
        st = ensure_settings_row(s)
        st.name = "Northwind Outfitters"
        st.support_email = "help@northwind.example"
        st.accent_color = "#0f766e"
        st.intro_text = ("Something went wrong with your delivery? Your order was protected, so "
                         "we'll make it right. Find your order to start.")
        # the store's own words in the portal's other languages (Settings → Languages & currency)
        st.texts = json.dumps({
            "es": {"intro": "¿Algo salió mal con tu entrega? Tu pedido estaba protegido, así que lo "
                            "solucionamos. Busca tu pedido para empezar."},
            "fr": {"intro": "Un problème avec votre livraison ? Votre commande était protégée : "
                            "nous allons arranger ça. Retrouvez votre commande pour commencer."},
            "de": {"intro": "Probleme mit Ihrer Lieferung? Ihre Bestellung war geschützt – wir "
                            "kümmern uns darum. Suchen Sie Ihre Bestellung, um zu beginnen."},
        }, ensure_ascii=False)
        st.store_credit_bonus_pct = 10
        st.timezone = "America/New_York"
        for sku, _name, _price in PRODUCTS:
            s.add(Stock(sku=sku, on_hand=0 if sku in ("WJ-M", "LAMP-BR") else rng.randint(5, 60)))
        made = [_random_order(rng, 1000 + i, now) for i in range(orders)]
        s.add_all(made)
        s.add_all(_named_orders(now))
        s.flush()
        out["orders"] = len(made) + len(DEMO_ORDERS)

    if create_staff:
        for username, role in (("owner", "owner"), ("jordan", "agent"), ("riley", "analyst")):
            password = secrets.token_urlsafe(12)
            add_user(engine, username, role, password, username.title(), actor="demo")
            out["logins"][username] = (role, password)

    out["tracked"] = demo_tracking.track_demo_shipments(engine, now, seed)
    out["claims"] = _claims(engine, rng, now, _PhotoSource(seed), log)
    return out


def _random_order(rng: random.Random, number: int, now: datetime) -> Order:
    created = now - timedelta(days=rng.uniform(0.5, 365), minutes=rng.randint(0, 1440))
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}.{number}@example.com".lower().replace("'", "")
    country, prov, city = rng.choice(DESTINATIONS)
    protected = rng.random() < 0.82
    lines = []
    for pos, (sku, name, price) in enumerate(rng.sample(PRODUCTS, rng.choice([1, 1, 1, 2, 2, 3])), 1):
        lines.append(LineItem(position=pos, sku=sku, name=name, quantity=rng.choice([1, 1, 1, 2, 3]),
                              unit_price_cents=price))
    subtotal = sum(li.unit_price_cents * li.quantity for li in lines)
    fee = 0
    if protected:
        fee = max(295, (subtotal * 4 + 50) // 100)  # ~4 % of the order, at least $2.95
        lines.append(LineItem(position=len(lines) + 1, sku="SHIP-PROTECT", name="Shipping Protection",
                              quantity=1, unit_price_cents=fee, requires_shipping=False,
                              is_protection=True))
    shipping = rng.choice([0, 595, 995])
    tax = (subtotal * 7) // 100
    order = Order(
        order_number=str(number), name=f"#{number}", email=email, customer_name=f"{first} {last}",
        created_at=created, financial_status="paid", currency="USD", subtotal_cents=subtotal + fee,
        shipping_cents=shipping, tax_cents=tax, total_cents=subtotal + fee + shipping + tax,
        protection_fee_cents=fee, protection_purchased_at=created if protected else None,
        shipping_method=rng.choice(METHODS), shipping_address1=f"{rng.randint(1, 999)} Main St",
        shipping_city=city, shipping_province=prov, shipping_country=country,
        shipping_zip=f"{rng.randint(10000, 99999)}", source="demo", line_items=lines,
    )
    age_days = (now - created).days
    if age_days < 1:
        order.fulfillment_status = "unfulfilled"
        return order
    order.fulfillment_status = "fulfilled"
    goods = [li for li in lines if not li.is_protection]
    split = len(goods) > 1 and rng.random() < 0.12
    groups = [goods[:1], goods[1:]] if split else [goods]
    for gi, group in enumerate(groups):
        shipped = created + timedelta(hours=rng.randint(6, 60) + gi * rng.randint(24, 96))
        if shipped > now:
            shipped = now - timedelta(hours=1)
        order.shipments.append(_shipment(rng, shipped, now, group))
    return order


def _shipment(rng: random.Random, shipped: datetime, now: datetime, group: list[LineItem],
              status: str | None = None) -> Shipment:
    carrier = _pick_carrier(rng)
    transit = timedelta(days=rng.uniform(1.5, 7))
    age = now - shipped
    if status is None:
        roll = rng.random()
        if age < transit:
            status = "in_transit"
        elif roll < 0.025:
            status = "returned"
        elif roll < 0.06:
            status = "exception"  # stuck: tracking stopped moving
        else:
            status = "delivered"
    sh = Shipment(tracking_number=_tracking(rng, carrier), carrier=carrier, status=status,
                  shipped_at=shipped, source="demo")
    if status == "delivered":
        sh.delivered_at = min(now, shipped + transit)
        sh.last_scan_at = sh.delivered_at
    elif status == "in_transit":
        sh.last_scan_at = min(now, shipped + timedelta(hours=rng.randint(2, 30)))
    elif status == "exception":
        sh.last_scan_at = shipped + timedelta(days=rng.uniform(0.5, 2))
    elif status == "returned":
        sh.last_scan_at = min(now, shipped + transit * 2)
    sh.items = [ShipmentItem(line_item=li, quantity=li.quantity) for li in group]
    return sh


def _named_orders(now: datetime) -> list[Order]:
    rng = random.Random(SEED + 5000)

    def order(n: DemoOrder, days_ago: float, lines, protected=True, customer="") -> Order:
        created = now - timedelta(days=days_ago)
        items = [LineItem(position=i, sku=sku, name=name, quantity=q, unit_price_cents=p)
                 for i, (sku, name, p, q) in enumerate(lines, 1)]
        subtotal = sum(li.unit_price_cents * li.quantity for li in items)
        fee = 0
        if protected:
            fee = 395
            items.append(LineItem(position=len(items) + 1, sku="SHIP-PROTECT",
                                  name="Shipping Protection", quantity=1, unit_price_cents=fee,
                                  requires_shipping=False, is_protection=True))
        return Order(order_number=n.number, name=f"#{n.number}", email=n.email,
                     customer_name=customer, created_at=created, currency="USD",
                     fulfillment_status="fulfilled", subtotal_cents=subtotal + fee,
                     shipping_cents=995, tax_cents=subtotal * 7 // 100,
                     total_cents=subtotal + fee + 995 + subtotal * 7 // 100,
                     protection_fee_cents=fee, protection_purchased_at=created if protected else None,
                     shipping_method="Standard Shipping", shipping_address1="12 Harbor Rd",
                     shipping_city="Portland", shipping_province="OR", shipping_country="US",
                     shipping_zip="97201", source="demo", line_items=items)

    d1, d2, d3, d4, d5 = DEMO_ORDERS
    o1 = order(d1, 12, [("POUR-SET", "Ceramic Pour-Over Set", 6200, 1),
                        ("MUG-HT", "Hand-thrown Mug", 2800, 2),
                        ("WJ-L", "Waxed Jacket / L", 24900, 1)], customer="Jamie Rivera")
    o1.shipments = [
        _shipment(rng, now - timedelta(days=11), now, o1.line_items[:2], "delivered"),
        _shipment(rng, now - timedelta(days=10), now, o1.line_items[2:3], "in_transit"),
    ]
    o1.shipments[0].delivered_at = now - timedelta(days=8)
    o1.shipments[0].last_scan_at = o1.shipments[0].delivered_at
    o1.shipments[1].last_scan_at = now - timedelta(days=9)  # stalled: "lost" is available
    o2 = order(d2, 9, [("TOTE-CNV", "Canvas Tote", 3450, 1)], protected=False, customer="Casey Nguyen")
    o2.shipments = [_shipment(rng, now - timedelta(days=8), now, o2.line_items[:1], "delivered")]
    o3 = order(d3, 75, [("LAMP-BR", "Brass Desk Lamp", 8900, 1)], customer="Morgan Lee")
    o3.shipments = [_shipment(rng, now - timedelta(days=74), now, o3.line_items[:1], "delivered")]
    o4 = order(d4, 15, [("BLANKET-WL", "Wool Throw Blanket", 11500, 1),
                        ("BOTTLE-SS", "Steel Water Bottle", 3200, 2)], customer="Taylor Brooks")
    o4.shipments = [_shipment(rng, now - timedelta(days=14), now, o4.line_items[:2], "delivered")]
    o5 = order(d5, 20, [("TR2-BK-9", "Trail Runner 2 - Black / 9", 12900, 1)], customer="Avery Patel")
    o5.shipments = [_shipment(rng, now - timedelta(days=19), now, o5.line_items[:1], "delivered")]
    o5.protection_purchased_at = now - timedelta(days=16)  # added after it shipped
    return [o1, o2, o3, o4, o5]


# --- claims -------------------------------------------------------------------------------------

COMMENTS = {
    "damaged": ["The box was crushed on one corner and the item inside is cracked.",
                "Arrived with a big dent, photos attached."],
    "defective": ["It stopped working after one day.", "The zip is broken out of the box."],
    "wrong_item": ["I ordered a different size.", "This isn't what I ordered — wrong colour."],
    "missing_item": ["Only one of the two items was in the box.", "Box was empty except for paper."],
    "stolen": ["Delivered to my porch while I was at work; it was gone when I got home."],
    "not_received": ["Tracking says delivered but nothing is here, neighbours haven't seen it."],
    "lost": ["Tracking hasn't moved in over a week."],
    "delayed": ["It's well past the expected date."],
    "returned_to_sender": ["The carrier sent it back, please send it again."],
}


def _claims(engine: Engine, rng: random.Random, now: datetime, photos: "_PhotoSource",
            log) -> int:
    with read_session(engine) as s:
        rows = s.execute(
            select(Shipment.id, Shipment.order_id, Shipment.status, Shipment.shipped_at,
                   Shipment.delivered_at, Shipment.last_scan_at, Shipment.milestone,
                   Shipment.expected_delivery_at, Order.email, Order.order_number,
                   Order.total_cents)
            .join(Order, Order.id == Shipment.order_id)
            .where(Order.protection_purchased_at.is_not(None), Order.source == "demo",
                   Order.order_number.not_in([d.number for d in DEMO_ORDERS]))
            .order_by(Shipment.id)
        ).all()
        settings = settings_row(s)
        window = settings.filing_window_days
        lost_wait = settings.lost_wait_days
    made = 0
    signature = make_signature("demo")
    for row in rows:
        age = (now - row.shipped_at).days
        rate = 0.35 if row.status in ("exception", "returned") else (
            0.15 if age < 20 else 0.05 if age < 45 else 0.035)
        if rng.random() > rate:
            continue
        filed_at = _filing_time(rng, row, now, window, lost_wait)
        if filed_at is None:
            continue
        issues = domain.available_issue_types(row.status, row.shipped_at, row.last_scan_at, filed_at,
                                             lost_wait, milestone=row.milestone,
                                             expected_delivery_at=row.expected_delivery_at)
        if not issues:
            continue
        weights = {"damaged": 5, "missing_item": 2, "defective": 2, "wrong_item": 2, "stolen": 2,
                   "not_received": 3, "lost": 4, "delayed": 1, "returned_to_sender": 3}
        issue = rng.choices(issues, [weights[i] for i in issues])[0]
        if _file_one(engine, rng, row, issue, filed_at, now, photos, signature):
            made += 1
    _named_claim(engine, now, photos, signature)
    log(f"  {made + 1} demo claims filed")
    return made + 1


def _filing_time(rng, row, now, window, lost_wait) -> datetime | None:
    if row.status == "delivered":
        span = (min(now, row.shipped_at + timedelta(days=window - 1)) - row.delivered_at)
        hours = span.total_seconds() / 3600
        if hours < 3:
            return None
        # most claims come in the first days after delivery, some much later
        start = row.delivered_at + timedelta(hours=min(hours - 1, rng.expovariate(1 / 96) + 2))
    elif row.status in ("exception", "in_transit"):
        start = (row.last_scan_at or row.shipped_at) + timedelta(days=lost_wait + rng.uniform(0.2, 5))
    elif row.status == "returned":
        start = (row.last_scan_at or row.shipped_at) + timedelta(hours=rng.randint(4, 72))
    else:
        return None
    latest = row.shipped_at + timedelta(days=window - 1)
    if start > now or start > latest:
        return None
    return start


def _file_one(engine, rng, row, issue, filed_at, now, photos, signature) -> bool:
    with read_session(engine) as s:
        sh = s.get(Shipment, row.id)
        lines = [(si.id, si.quantity) for si in sh.items]
    items = {}
    if domain.ISSUE_TYPES[issue].category == domain.ITEM:
        sid, q = rng.choice(lines)
        items = {sid: rng.randint(1, q)}
    options = order_views.resolution_choices(engine, row.id, items, issue)
    available = [o.kind for o in options if o.available]
    desired = rng.choice(available)
    chosen = [] if not domain.photos_required(issue) and rng.random() < 0.6 else \
        photos.take(rng.choice([1, 1, 2, 3]))
    drawn = rng.random() < 0.6 or row.total_cents > 50000
    req = customer.ClaimRequest(
        idempotency_key=f"demo-{row.id}", order_id=row.order_id, email=row.email,
        shipment_id=row.id, issue_type=issue, items=items, desired_resolution=desired,
        description=rng.choice(COMMENTS[issue]), signature_kind="drawn" if drawn else "typed",
        signature_png=signature if drawn else None, signature_name="" if drawn else "Demo Customer",
        accurate_confirmed=True,
    )
    try:
        receipt = customer.file_claim(engine, req, now=filed_at, processed=chosen)
    except domain.ClaimRuleError:
        return False
    _progress(engine, rng, receipt, filed_at, now, desired)
    return True


def _progress(engine, rng, receipt, filed_at, now, desired) -> None:
    """Walk a claim through a plausible life, stopping earlier the newer it is."""
    age = (now - filed_at).days
    cid = receipt.claim_id
    t = filed_at + timedelta(hours=rng.uniform(2, 40))
    if age < 2 or t > now:
        return
    actor = rng.choice([STAFF, "staff:jordan"])
    decisions.start_review(engine, cid, actor, now=t)
    roll = rng.random()
    if age < 12 and roll < 0.4:
        return  # still in review
    if roll < 0.18 or age < 5 or (age < 12 and roll < 0.6):
        t2 = t + timedelta(hours=rng.uniform(1, 12))
        if t2 > now:
            return
        decisions.request_info(engine, cid, actor, "Jordan",
                               "Could you send a photo of the shipping label and the box?", now=t2)
        if age < 8 or rng.random() < 0.4:
            return
        t3 = t2 + timedelta(hours=rng.uniform(3, 48))
        if t3 > now:
            return
        customer.add_customer_message(engine, receipt.access_token,
                                      "Here you go — label photo attached.", now=t3)
        t = t3
        roll = rng.random()
    t4 = t + timedelta(hours=rng.uniform(2, 72))
    if t4 > now:
        return
    if roll < 0.2:
        decisions.deny(engine, cid, actor,
                       rng.choice(["delivered_confirmed", "insufficient_evidence", "not_covered"]),
                       "Sorry we can't help with this one.", now=t4)
        return
    if roll < 0.25:
        decisions.close(engine, cid, actor, now=t4)
        return
    res = _resolution_for(rng, desired, receipt.claimed_cents)
    try:
        decisions.approve(engine, cid, actor, res, now=t4)
    except domain.ClaimRuleError:  # e.g. stock ran out meanwhile: refund instead
        decisions.approve(engine, cid, actor,
                          [decisions.ResolutionInput("refund", receipt.claimed_cents)], now=t4)
    decisions.staff_message(engine, cid, actor, "Jordan", "Approved — thanks for your patience!",
                            now=t4)
    if (now - t4).days > 3 and rng.random() < 0.8:
        decisions.mark_resolved(engine, cid, actor, now=t4 + timedelta(days=1))


def _resolution_for(rng, desired: str, claimed: int) -> list:
    R = decisions.ResolutionInput
    if rng.random() < 0.12 and claimed >= 200:  # a partial: half refund, half credit
        half = claimed // 2
        return [R("refund", half), R("store_credit", claimed - half, 10)]
    if desired == "store_credit":
        return [R("store_credit", claimed, 10)]
    if desired == "reshipment":
        return [R("reshipment")]
    return [R("refund", claimed)]


def _named_claim(engine, now, photos, signature) -> None:
    d4 = DEMO_ORDERS[3]
    with read_session(engine) as s:
        order = s.scalars(select(Order).where(Order.order_number == d4.number)).one()
        sh = order.shipments[0]
        sid = sh.items[0].id
        oid, shid = order.id, sh.id
    filed = now - timedelta(days=4)
    receipt = customer.file_claim(engine, customer.ClaimRequest(
        idempotency_key="demo-named-5004", order_id=oid, email=d4.email, shipment_id=shid,
        issue_type="damaged", items={sid: 1}, desired_resolution="refund",
        description="The blanket arrived torn along one edge.", signature_kind="drawn",
        signature_png=signature, accurate_confirmed=True, photos=[]), now=filed,
        processed=photos.take(2))
    decisions.start_review(engine, receipt.claim_id, STAFF, now=filed + timedelta(hours=5))
    decisions.request_info(engine, receipt.claim_id, STAFF, "Northwind support",
                           "Sorry about that! Could you send one more photo showing the tear "
                           "close up?", now=filed + timedelta(hours=6))
