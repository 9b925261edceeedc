"""Build the bundled demo SQLite database (``demo/demo.sqlite``) deterministically.

The demo database is what the quick-start, the docs and the end-to-end tests export, so it
has to exercise the awkward corners of every writer: NULLs, decimals, naive and offset
timestamps, booleans, JSON, blobs and text full of delimiters, quotes, newlines and
non-ASCII characters. Every value is derived arithmetically from the row index (no
randomness, no clock), so rebuilding always gives the same rows.

The declared column types matter: the export engine reflects the tables with SQLAlchemy
and chooses how to render each column from the declared type. Values are stored in the
representation SQLAlchemy's SQLite dialect reads back (dates as ``YYYY-MM-DD``,
datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff``, booleans as 0/1, JSON as text).

``demo_customers()`` and ``demo_orders()`` return the rows as the Python values a
reflected ``select(table)`` gives back, so tests can compare against them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Context, Decimal
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEMO_DB_PATH: Path = Path(__file__).resolve().parent / "demo.sqlite"

CUSTOMER_COUNT = 50
ORDER_COUNT = 1_000

AMOUNT_SCALE = 2
BIG_AMOUNT_SCALE = 10

_SCHEMA = """
CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    country TEXT,
    signed_up DATE,
    is_active BOOLEAN,
    notes TEXT
);
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers (customer_id),
    ordered_at DATETIME,
    ordered_at_local TEXT,
    amount NUMERIC(12, 2),
    big_amount NUMERIC(30, 10),
    quantity INTEGER,
    discount REAL,
    paid BOOLEAN,
    status TEXT,
    comment TEXT,
    attributes JSON,
    receipt BLOB
);
"""

CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "name",
    "email",
    "country",
    "signed_up",
    "is_active",
    "notes",
)
ORDER_COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "ordered_at",
    "ordered_at_local",
    "amount",
    "big_amount",
    "quantity",
    "discount",
    "paid",
    "status",
    "comment",
    "attributes",
    "receipt",
)

# Text that breaks naive CSV / JSON / XML writers. No XML-1.0-forbidden control characters
# (U+0000-U+0008, U+000B, U+000C, U+000E-U+001F): tab, LF and CR are the only ones used.
AWKWARD_TEXT: tuple[str, ...] = (
    "comma, separated, value",
    'double "quoted" text',
    "single 'quoted' text, O'Brien's",
    "line one\nline two",
    "windows line\r\nending",
    "tab\tseparated\tvalues",
    "  leading and trailing spaces  ",
    "",
    "Zoë Ångström, Müller & naïve café — crème brûlée",
    "中文字符 · 日本語のテキスト · 한국어",
    "مرحبا بالعالم",
    "שלום עולם",
    "mixed direction: שלום and مرحبا and English",
    "emoji 😀 👩‍💻 👨‍👩‍👧‍👦 🇯🇵 🇫🇷 🏳️‍🌈",
    "XML specials & < > \" ' &amp; &lt; <![CDATA[x]]> ]]>",
    "back\\slash C:\\temp\\new",
    "007",
    "NULL",
    "null",
    "None",
    "true",
    "=1+2",
    "1,234.56",
    "e\u0301 (combining accent) and non\u00a0breaking\u00a0space",
)

_FIRST_NAMES = (
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Hedy",
    "Edsger",
    "Sophie",
    "Guido",
    "Yukihiro",
)
_LAST_NAMES = (
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Turing",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Dijkstra",
    "Wilson",
    "van Rossum",
)
# Customer names replacing the generated ones at fixed ids (name is NOT NULL: '' is the
# empty-but-present case).
_SPECIAL_NAMES: dict[int, str] = {
    3: "O'Brien, Siobhán",
    6: 'Jean "JJ" Dupont',
    9: "  Leading and trailing  ",
    12: "王小明",
    15: "محمد الأحمد",
    18: "דוד כהן",
    21: "AT&T <Corp> \"Ltd\" 'x'",
    24: "👩‍💻 Dev Team 🇯🇵",
    27: "007",
    30: "NULL",
    33: "null",
    36: "Multi\nLine Name",
    39: "Tab\tName\r\nCRLF",
    42: "",
    45: "Back\\slash Ltd",
    48: "Zoë Ångström",
}
_COUNTRIES = ("US", "GB", "FR", "DE", "JP", "IN", "BR", "CA", "AU", "Côte d’Ivoire", "日本")
_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "refunded")
_CHANNELS = ("web", "mobile", "phone", "partner")

# (standard, daylight) UTC offsets in minutes and whether DST is northern or southern.
# A simplified rule (northern DST Apr-Oct, southern Oct-Mar) gives a DST-like mix without
# depending on the host's tz database.
_ZONES: tuple[tuple[int, int, str], ...] = (
    (0, 60, "north"),  # London-like
    (60, 120, "north"),  # Paris-like
    (-300, -240, "north"),  # New York-like
    (-210, -150, "north"),  # St John's-like (half-hour offset with DST)
    (330, 330, "none"),  # India
    (345, 345, "none"),  # Nepal
    (540, 540, "none"),  # Tokyo
    (630, 660, "south"),  # Lord Howe-like (30-minute DST shift, southern hemisphere)
    (-570, -570, "none"),  # Marquesas
    (-270, -270, "none"),  # Caracas 2007-2016
    (840, 840, "none"),  # Kiritimati
    (-600, -600, "none"),  # Honolulu
)

# Decimals worth having regardless of the arithmetic sequence, cycled through the orders.
_SPECIAL_AMOUNTS: tuple[Decimal | None, ...] = (
    Decimal("0.00"),
    Decimal("19.99"),
    Decimal("-0.01"),
    Decimal("0.01"),
    Decimal("0.10"),
    Decimal("9999999999.99"),
    Decimal("-9999999999.99"),
    Decimal("1000000.00"),
    None,
)
# NUMERIC(30, 10): 20-digit integers that are exact binary doubles (powers of two), the
# largest exactly representable integer, and 10-decimal values with up to 15 significant
# digits. See _storable_decimal for why nothing wider is possible.
_SPECIAL_BIG_AMOUNTS: tuple[Decimal | None, ...] = (
    Decimal("18446744073709551616.0000000000"),  # 2**64
    Decimal("-36893488147419103232.0000000000"),  # -(2**65)
    Decimal("73786976294838206464.0000000000"),  # 2**66
    Decimal("9007199254740991.0000000000"),  # 2**53 - 1
    Decimal("0E-10"),
    Decimal("0.0000000001"),
    Decimal("-0.0000000001"),
    Decimal("12345.0123456789"),
    Decimal("-98765.4321098765"),
    Decimal("3.1415926536"),
    None,
)
_DISCOUNTS: tuple[float | None, ...] = (
    None,
    0.0,
    5.0,
    2.5,
    None,
    10.0,
    12.75,
    0.1,
    None,
    33.33,
    100.0,
    0.0,
)


def _awkward(index: int) -> str:
    return AWKWARD_TEXT[index % len(AWKWARD_TEXT)]


def _quantize(value: Decimal, scale: int) -> Decimal:
    # The default 28-digit context cannot hold NUMERIC(30, 10) values.
    return value.quantize(Decimal(1).scaleb(-scale), context=Context(prec=40))


def _storable_decimal(value: Decimal | None, scale: int) -> float | None:
    """Return the float to store for a NUMERIC(p, ``scale``) value, refusing lossy ones.

    SQLite's NUMERIC affinity turns any numeric-looking text into an INTEGER or an 8-byte
    REAL on insert (SQLite 3.40 converts even '12345678901234567890.0123456789', which
    does not fit, to 1.2345678901234567e+19), and SQLAlchemy's SQLite dialect turns what
    it reads back into a Decimal with ``Decimal("%.{scale}f" % value)``, which fails on
    text. So a NUMERIC column on SQLite can only hold values whose nearest double formats
    back to the same digits: about 15 significant digits, or larger exact binary values.
    We store that float (what SQLAlchemy itself binds for Numeric on SQLite) and check the
    read-back here, so an unrepresentable demo value fails the build instead of silently
    coming back different.
    """
    if value is None:
        return None
    stored = float(value)
    read_back = Decimal(f"%.{scale}f" % stored)
    if read_back != value or read_back.as_tuple().exponent != -scale:
        raise ValueError(f"{value} would not read back exactly from SQLite (got {read_back})")
    return stored


def demo_customers() -> list[dict[str, Any]]:
    """The ``customers`` rows, as SQLAlchemy returns them from the built database."""
    rows: list[dict[str, Any]] = []
    for cid in range(1, CUSTOMER_COUNT + 1):
        first = _FIRST_NAMES[cid % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(cid * 7) % len(_LAST_NAMES)]
        name = _SPECIAL_NAMES.get(cid, f"{first} {last}")
        if cid % 7 == 0:
            email = None
        elif cid == 10:
            email = ""
        elif cid == 20:
            email = '"quoted.local"@example.com'
        else:
            email = f"{first.lower()}.{last.lower().replace(' ', '')}{cid}@example.com"
        country = None if cid % 11 == 0 else _COUNTRIES[cid % len(_COUNTRIES)]
        signed_up = None if cid % 13 == 0 else date(2020, 1, 1) + timedelta(days=(cid * 37) % 1461)
        is_active = None if cid in (17, 34) else cid % 3 != 0
        notes = _awkward(cid // 2) if cid % 2 == 0 else None
        rows.append(
            {
                "customer_id": cid,
                "name": name,
                "email": email,
                "country": country,
                "signed_up": signed_up,
                "is_active": is_active,
                "notes": notes,
            }
        )
    return rows


def _local_iso(moment: datetime, zone_index: int) -> str:
    standard, daylight, hemisphere = _ZONES[zone_index % len(_ZONES)]
    if hemisphere == "north":
        in_dst = 4 <= moment.month <= 10
    elif hemisphere == "south":
        in_dst = moment.month >= 10 or moment.month <= 3
    else:
        in_dst = False
    offset = timezone(timedelta(minutes=daylight if in_dst else standard))
    return moment.replace(tzinfo=UTC).astimezone(offset).isoformat()


def _attributes(oid: int) -> dict[str, Any] | None:
    if oid % 6 == 0:
        return None
    if oid % 50 == 1:
        return {}
    attributes: dict[str, Any] = {
        "channel": _CHANNELS[oid % len(_CHANNELS)],
        "gift": oid % 4 == 1,
        "items": [{"sku": f"SKU-{(oid * 13) % 1000:04d}", "qty": oid % 5 + 1}],
        "coupon": None if oid % 3 else f"SAVE{oid % 30}",
        "score": (oid % 200) / 8,
    }
    if oid % 5 == 2:
        attributes["note"] = _awkward(oid)
    if oid % 25 == 3:
        attributes['ünïcødé key, with "quotes"'] = ["日本", "🇫🇷", -1, 0.5, True, None]
    return attributes


def _receipt(oid: int) -> bytes | None:
    if oid % 3 == 0:
        return None
    if oid % 100 == 1:
        return b""
    body = bytes((oid * 31 + j * 17) % 256 for j in range(oid % 13))
    return b"\x00" + body + b"\xff"


def demo_orders() -> list[dict[str, Any]]:
    """The ``orders`` rows, as SQLAlchemy returns them from the built database."""
    rows: list[dict[str, Any]] = []
    start = datetime(2023, 1, 1)
    for oid in range(1, ORDER_COUNT + 1):
        if oid % 199 == 0:
            ordered_at = None
        else:
            micro = 0 if oid % 5 == 1 else (oid * 987_654_321) % 1_000_000
            ordered_at = start + timedelta(seconds=(oid - 1) * 63_113, microseconds=micro)
        ordered_at_local = None if ordered_at is None else _local_iso(ordered_at, oid * 5)

        if oid % 10 == 3:
            amount = _SPECIAL_AMOUNTS[(oid // 10) % len(_SPECIAL_AMOUNTS)]
        elif oid % 53 == 0:
            amount = None
        else:
            amount = Decimal((oid * 7_919) % 2_000_000 - 200_000).scaleb(-AMOUNT_SCALE)

        if oid % 10 == 7:
            big_amount = _SPECIAL_BIG_AMOUNTS[(oid // 10) % len(_SPECIAL_BIG_AMOUNTS)]
        elif oid % 41 == 0:
            big_amount = None
        else:
            units = (oid * 7_654_321_987) % 10**15
            big_amount = Decimal(-units if oid % 9 == 0 else units).scaleb(-BIG_AMOUNT_SCALE)

        if oid % 97 == 0:
            quantity = None
        elif oid == 500:
            quantity = 2**31  # past 32-bit
        elif oid % 20 == 0:
            quantity = -(oid % 3 + 1)  # returns
        else:
            quantity = oid % 12

        status: str | None = _STATUSES[oid % len(_STATUSES)]
        if oid % 89 == 0:
            status = None
        elif oid % 111 == 0:
            status = ("", "NULL", "null", " shipped ")[(oid // 111) % 4]

        rows.append(
            {
                "order_id": oid,
                "customer_id": None if oid % 151 == 0 else (oid * 7) % CUSTOMER_COUNT + 1,
                "ordered_at": ordered_at,
                "ordered_at_local": ordered_at_local,
                "amount": None if amount is None else _quantize(amount, AMOUNT_SCALE),
                "big_amount": (
                    None if big_amount is None else _quantize(big_amount, BIG_AMOUNT_SCALE)
                ),
                "quantity": quantity,
                "discount": _DISCOUNTS[oid % len(_DISCOUNTS)],
                "paid": None if oid % 101 == 0 else oid % 3 != 0,
                "status": status,
                "comment": _awkward(oid // 7) if oid % 7 == 0 else None,
                "attributes": _attributes(oid),
                "receipt": _receipt(oid),
            }
        )
    return rows


def _stored_customers(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        signed_up: date | None = row["signed_up"]
        is_active: bool | None = row["is_active"]
        yield (
            row["customer_id"],
            row["name"],
            row["email"],
            row["country"],
            None if signed_up is None else signed_up.isoformat(),
            None if is_active is None else int(is_active),
            row["notes"],
        )


def _stored_orders(rows: Sequence[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        ordered_at: datetime | None = row["ordered_at"]
        paid: bool | None = row["paid"]
        attributes: dict[str, Any] | None = row["attributes"]
        yield (
            row["order_id"],
            row["customer_id"],
            # SQLAlchemy's SQLite DATETIME storage format: always six microsecond digits.
            None if ordered_at is None else ordered_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
            row["ordered_at_local"],
            _storable_decimal(row["amount"], AMOUNT_SCALE),
            _storable_decimal(row["big_amount"], BIG_AMOUNT_SCALE),
            row["quantity"],
            row["discount"],
            None if paid is None else int(paid),
            row["status"],
            row["comment"],
            None if attributes is None else json.dumps(attributes, ensure_ascii=False),
            row["receipt"],
        )


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


def build_demo_db(path: Path) -> Path:
    """(Re)create the demo database at ``path`` and return ``path``.

    The file is written next to ``path`` under a temporary name and moved into place with
    ``os.replace``, so a half-built database never sits at ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the demo file is meant to be shared
    try:
        with closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode = DELETE")
            conn.execute("BEGIN")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                _insert_sql("customers", CUSTOMER_COLUMNS), _stored_customers(demo_customers())
            )
            conn.executemany(_insert_sql("orders", ORDER_COLUMNS), _stored_orders(demo_orders()))
            conn.execute("COMMIT")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("built demo database %s", path)
    return path


def ensure_demo_db(path: Path = DEMO_DB_PATH) -> Path:
    """Build the demo database at ``path`` unless a file is already there."""
    path = Path(path)
    if path.exists():
        return path
    return build_demo_db(path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    build_demo_db(DEMO_DB_PATH)
