"""The types of the export's parameters (Contract 1) as pydantic models, with the rules each
field keeps on its own: every stage reads them. Rules that need a stage (a store's URLs, a
format's names) are the request's, in flows/request.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows.core.codecs import Compression
from flows.core.errors import ConfigurationError
from flows.core.records import record_tokens
from flows.core.urls import url_scheme
from flows.core.zones import iana_zone

# What a run that reads no rows delivers (`on_empty`): an empty file, nothing, or a failure.
OnEmpty = Literal["write", "skip", "fail"]
# What a run whose columns or types differ from the last successful run's does
# (`on_schema_change`): deliver them (and record them), or fail before any row is read.
OnSchemaChange = Literal["allow", "fail"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
DEFAULT_CHUNK_ROWS = 50_000
MAX_PARTITIONS = 64
# The longest `window.lookback` or `window.period`: longer ones have no use, and past about
# 2,000 years `until - period` leaves the datetime range (year 1) for any run of today.
MAX_WINDOW_SPAN = timedelta(days=365_250)  # 1,000 years
# How long a run of an incremental export waits for another run of it to free its cursor.
DEFAULT_LOCK_TIMEOUT = timedelta(hours=1)
MAX_LOCK_TIMEOUT = timedelta(days=7)


def _is_postgres(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FilterOp = Literal[
    "=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "not_null", "like"
]
_NO_VALUE_OPS = ("is_null", "not_null")
_LIST_OPS = ("in", "not_in")


HASHES = ("hmac_sha256",)
MASK_NULL = "null"
MASKS = ("last4", MASK_NULL)


class ColumnSpec(_Model):
    """One column of the export: a source column, and the name it is written under."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(description="The column of the table or query.")
    as_: str | None = Field(
        default=None,
        alias="as",
        description="The name it is written under (CSV header, JSON key, XML element, Parquet "
        "field); by default its own.",
    )

    # Hashed or masked (docs/design.md, "Hashed and masked columns"): checked with the column's
    # place in the list by SourceConfig, so a message names `source.columns[2].key`.
    hash: str | None = Field(
        default=None,
        description="hmac_sha256: the value's hex HMAC-SHA256 (of its UTF-8 text) with `key`.",
    )
    key: str | None = Field(
        default=None, description="The saved HashKey block holding the hash's secret key."
    )
    mask: str | None = Field(
        default=None,
        description="last4: every character but the last 4 written as `*`; null: NULL.",
        # No mask is left out of a dump, so stored parameters (Prefect keeps them as JSON)
        # never read back as `mask: null`, which masks the column.
        exclude_if=lambda value: value is None,
    )

    @model_validator(mode="before")
    @classmethod
    def _mask_null(cls, value: Any) -> Any:
        """`mask: null` (YAML's and JSON's null) asks for NULL: told apart from no mask, and
        held as the text `null` from then on."""
        if isinstance(value, dict) and "mask" in value and value["mask"] is None:
            return {**value, "mask": MASK_NULL}
        return value

    @property
    def output(self) -> str:
        return self.as_ if self.as_ is not None else self.name


class FilterCondition(_Model):
    """One condition a row must meet; values are bound as parameters, never written as SQL."""

    column: str = Field(description="The column of the table or query the condition tests.")
    op: FilterOp = Field(
        description="=, !=, <, <=, >, >=, in, not_in, between, is_null, not_null or like."
    )
    value: Any = Field(
        default=None,
        description="A value; a list for in / not_in; [low, high] for between (both "
        "included); nothing for is_null / not_null; a pattern with % and _ for like.",
    )

    @model_validator(mode="after")
    def _value_fits_op(self) -> FilterCondition:
        where = f"source.filter: `{self.column} {self.op}`"
        if self.op in _NO_VALUE_OPS:
            if self.value is not None:
                raise ValueError(f"{where} takes no value; remove `value`")
        elif self.op in _LIST_OPS:
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"{where} needs a non-empty list of values, e.g. [1, 2]")
            if any(isinstance(item, (list, dict)) or item is None for item in self.value):
                raise ValueError(f"{where}: each value is a number, a string or a boolean")
        elif self.op == "between":
            if not isinstance(self.value, list) or len(self.value) != 2:
                raise ValueError(f"{where} needs [low, high], e.g. [10, 20]")
            if any(isinstance(item, (list, dict)) or item is None for item in self.value):
                raise ValueError(f"{where}: low and high are numbers, strings or dates")
        elif self.value is None or isinstance(self.value, (list, dict)):
            hint = "; for NULL use op is_null" if self.value is None else ""
            raise ValueError(f"{where} needs one value (a number, a string or a boolean){hint}")
        elif self.op == "like" and not isinstance(self.value, str):
            raise ValueError(f"{where} needs a text pattern, e.g. 'ACME%'")
        return self


_SHORT_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class IncrementalConfig(_Model):
    """A stored cursor (`source.incremental`): each run delivers the rows whose `cursor` is
    above the mark the last successful run left, up to the largest the run saw; the mark
    moves only once everything is published (flows/sources/cursor.py)."""

    cursor: str = Field(
        description=(
            "The column whose value grows as rows are added or changed (an id, an updated_at "
            "timestamp): integer, numeric, text, date or timestamp."
        )
    )
    initial: Any = Field(
        default=None,
        description=(
            "The first run's lowest value (included); by default the first run delivers "
            "every row. Later runs start above the stored mark."
        ),
    )
    lookback: timedelta | None = Field(
        default=None,
        description=(
            "Re-read this margin below the mark for rows that commit late (they may be "
            "delivered twice, never lost): ISO 8601 (PT15M) or 90s, 15m, 2h, 1d. Date and "
            "timestamp cursors only."
        ),
    )
    lock_timeout: timedelta = Field(
        default=DEFAULT_LOCK_TIMEOUT,
        description=(
            "How long a run waits while another run of the same export holds its cursor, "
            "before failing without reading a row: ISO 8601 (PT1H) or 90s, 15m, 2h, 1d; 0 fails "
            "at once."
        ),
    )

    @field_validator("cursor")
    @classmethod
    def _column_name(cls, value: str) -> str:
        if not _COLUMN.match(value):
            raise ConfigurationError(
                f"source.incremental.cursor: `{value}` is not a column name",
                field="source.incremental.cursor",
                hint="give the name of a column of the table or query, e.g. updated_at",
            )
        return value

    @field_validator("initial")
    @classmethod
    def _plain_value(cls, value: Any) -> Any:
        if isinstance(value, (list, dict, bool)):
            raise ConfigurationError(
                f"source.incremental.initial: `{value!r}` is not a cursor value",
                field="source.incremental.initial",
                hint="give a number, a text, a date or a timestamp, e.g. '2026-03-01T00:00:00'",
            )
        return value

    @field_validator("lookback", "lock_timeout", mode="before")
    @classmethod
    def _short_duration(cls, value: Any) -> Any:
        if isinstance(value, str) and (short := _SHORT_DURATION.match(value)) is not None:
            return timedelta(seconds=int(short.group(1)) * _UNIT_SECONDS[short.group(2)])
        return value

    @field_validator("lock_timeout")
    @classmethod
    def _lock_wait(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= MAX_LOCK_TIMEOUT:
            raise ConfigurationError(
                f"source.incremental.lock_timeout: `{value.total_seconds():g}` seconds is not a "
                "wait",
                field="source.incremental.lock_timeout",
                hint="give 0 (do not wait) or a positive duration up to 7 days, e.g. PT1H or 1h",
            )
        return value

    @field_validator("lookback")
    @classmethod
    def _lookback_span(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not timedelta(0) <= value <= MAX_WINDOW_SPAN:
            raise ConfigurationError(
                f"source.incremental.lookback: `{value.total_seconds():g}` seconds is not a margin",
                field="source.incremental.lookback",
                hint="give zero or a positive duration up to 1,000 years, e.g. PT15M or 15m",
            )
        return value


class SourceConfig(_Model):
    """Where rows come from: a database (URL or saved block) and a table or a query."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the database, e.g. sqlite:///demo/demo.sqlite.",
    )
    block: str | None = Field(
        default=None, description="Name of a saved SqlSource block holding the URL."
    )
    table: str | None = Field(default=None, description="Table to export, optionally schema.table.")
    query: str | None = Field(
        default=None, description="SQL query to export; bind parameters are written :name."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Values for the query's :name bind parameters."
    )
    chunk_rows: int = Field(
        default=DEFAULT_CHUNK_ROWS,
        ge=1,
        le=5_000_000,
        description="Rows read and written per chunk; memory grows with it, not with the table.",
    )
    reader: Literal["auto", "postgres_copy", "sqlalchemy"] = Field(
        default="auto",
        description="How rows are read: PostgreSQL COPY where possible, else SQLAlchemy.",
    )
    count_rows: bool | None = Field(
        default=None,
        description=(
            "Count rows first so the progress artifact shows a percentage; by default tables "
            "are counted and queries are not (counting runs the query twice)."
        ),
    )
    partitions: int = Field(
        default=1,
        ge=1,
        le=MAX_PARTITIONS,
        description=(
            "Split the read into this many ranges that run at once (1 to 64), each a task run "
            "writing its own parts. A PostgreSQL table is split by block ranges; anything else "
            "needs partition_by."
        ),
    )
    partition_by: str | None = Field(
        default=None,
        description=(
            "Column whose range is split between the partitions (integer, numeric, date or "
            "timestamp); its NULLs get a partition of their own."
        ),
    )
    bounds: tuple[Any, Any] | None = Field(
        default=None,
        description=(
            "[low, high] of partition_by to split, instead of the column's min and max; rows "
            "outside go to the first or last partition."
        ),
    )

    columns: list[ColumnSpec] | None = Field(
        default=None,
        description=(
            "The columns to export, in this order: names, or {name: COLUMN, as: OUTPUT_NAME} "
            "to rename, with `hash: hmac_sha256` and `key: BLOCK`, or `mask: last4` or "
            "`mask: null`, to hash or mask it. By default every column of the table or query."
        ),
    )
    filter: list[FilterCondition] = Field(
        default_factory=list,
        description=(
            "Conditions every exported row meets: {column, op, value} with op one of =, !=, "
            "<, <=, >, >=, in, not_in, between, is_null, not_null, like."
        ),
    )

    incremental: IncrementalConfig | None = Field(
        default=None,
        description=(
            "Deliver only what changed since the last successful run: {cursor: COLUMN, "
            "initial: VALUE, lookback: DURATION}; the mark is kept on the Prefect server."
        ),
    )

    @field_validator("columns", mode="before")
    @classmethod
    def _column_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> SourceConfig:
        if (self.url is None) == (self.block is None):
            raise ValueError("source: give exactly one of `url` (a SQLAlchemy URL) or `block`")
        if (self.table is None) == (self.query is None):
            raise ValueError("source: give exactly one of `table` or `query`")
        if self.table is not None and not _IDENTIFIER.match(self.table):
            raise ValueError(
                f"source.table: `{self.table}` is not a table name; use name or schema.name, "
                "or export it with `query`"
            )
        if self.params and self.query is None:
            raise ValueError("source.params: bind parameters need a `query`")
        self._check_columns()
        self._check_partitions()
        return self

    def _check_columns(self) -> None:
        if self.columns is None:
            return
        if not self.columns:
            raise ValueError("source.columns: an empty list exports nothing; name the columns")
        seen: dict[str, str] = {}
        for index, column in enumerate(self.columns):
            _check_protection(index, column)
            if not column.output.strip():
                raise ValueError(f"source.columns: `{column.name}` is renamed to an empty name")
            if column.output in seen:
                raise ValueError(
                    f"source.columns: two columns are written as `{column.output}` "
                    f"(`{seen[column.output]}` and `{column.name}`); give each its own `as`"
                )
            seen[column.output] = column.name

    def _check_partitions(self) -> None:
        if self.partition_by is not None and not _COLUMN.match(self.partition_by):
            raise ValueError(
                f"source.partition_by: `{self.partition_by}` is not a column name; use the "
                "name of an integer, numeric, date or timestamp column of the table or query"
            )
        if self.bounds is not None and self.partition_by is None:
            raise ValueError("source.bounds: bounds are values of source.partition_by; set it")
        if self.partitions > 1 and self.partition_by is None:
            if self.query is not None:
                raise ValueError(
                    f"source.partitions: {self.partitions} partitions of a query need "
                    "source.partition_by, a column to split its rows by (integer, numeric, date "
                    "or timestamp)"
                )
            if self.url is not None and not _is_postgres(self.url):
                raise ValueError(
                    "source.partitions: only a PostgreSQL table is split without a key; set "
                    "source.partition_by, a column to split the table's rows by"
                )


def _check_protection(index: int, column: ColumnSpec) -> None:
    """A column is hashed with a key, or masked, or neither; never both."""
    where = f"source.columns[{index}]"
    if column.hash is not None and column.mask is not None:
        raise ConfigurationError(
            f"{where}: `{column.name}` is both hashed and masked",
            field=where,
            hint="give it either `hash` or `mask`",
        )
    if column.hash is not None and column.hash not in HASHES:
        raise ConfigurationError(
            f"{where}.hash: `{column.hash}` is not a hash this export makes",
            field=f"{where}.hash",
            hint="use hmac_sha256 (a keyed hash: an unkeyed one is reversed by a dictionary)",
        )
    if column.mask is not None and column.mask not in MASKS:
        raise ConfigurationError(
            f"{where}.mask: `{column.mask}` is not a mask",
            field=f"{where}.mask",
            hint="use last4 (all but the last 4 characters as *) or null (NULL)",
        )
    if column.hash is not None and not column.key:
        raise ConfigurationError(
            f"{where}.key: hashing `{column.name}` needs a key",
            field=f"{where}.key",
            hint="name a saved HashKey block, e.g. key: exports-hash-key",
        )
    if column.key is not None and column.hash is None:
        raise ConfigurationError(
            f"{where}.key: a key is for a hashed column; `{column.name}` has no `hash`",
            field=f"{where}.key",
            hint="add hash: hmac_sha256, or remove the key",
        )


# A saved block's name (Prefect's: lowercase letters, digits and dashes), or an armored key.
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
PUBLIC_KEY_HEADER = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
SECRET_KEY_HEADER = "-----BEGIN PGP PRIVATE KEY BLOCK-----"


class PgpEncryption(_Model):
    """OpenPGP encryption of every delivered file (`destination.pgp`), after compression.

    The keys themselves are checked before any row is read (flows/destinations/pgp.py):
    here, only what each entry looks like. A key's text is never repeated in a message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    recipients: list[str] = Field(
        description=(
            "One or more public keys every file is encrypted to: each the name of a saved "
            "OpenPgpPublicKey block, or the armored key itself (-----BEGIN PGP PUBLIC KEY "
            "BLOCK-----)."
        ),
    )
    sign_with: str | None = Field(
        default=None,
        description=(
            "The name of a saved OpenPgpSigningKey block (a secret key and its passphrase): "
            "every file is signed as it is encrypted."
        ),
    )
    armor: bool = Field(
        default=False,
        description="ASCII-armored files (.asc) instead of binary OpenPGP (.pgp).",
    )

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        field = "destination.pgp.recipients"
        if not value:
            raise ConfigurationError(
                f"{field}: no recipient",
                field=field,
                hint="give one or more public keys: a saved OpenPgpPublicKey block's name, or "
                "an armored public key",
            )
        for index, entry in enumerate(value):
            check_key_entry(f"{field}[{index}]", entry)
        return value

    @field_validator("sign_with")
    @classmethod
    def _sign_with(cls, value: str | None) -> str | None:
        field = "destination.pgp.sign_with"
        if value is not None and not _BLOCK_NAME.match(value):
            raise ConfigurationError(
                f"{field}: not the name of a saved block",
                field=field,
                hint="save the secret key and its passphrase as an OpenPgpSigningKey block "
                "and give its name (the key itself never goes in the parameters)",
            )
        return value

    @property
    def extension(self) -> str:
        """The layer's name in Destination.file_codecs: `pgp`, or `asc` armored."""
        return "asc" if self.armor else "pgp"


def check_key_entry(field: str, entry: str) -> None:
    """A recipient is an armored public key or a block's name; a secret key is refused
    (without repeating it: it is a secret)."""
    text = entry.strip()
    if text.startswith(SECRET_KEY_HEADER):
        raise ConfigurationError(
            f"{field}: a secret key, not a public one",
            field=field,
            hint="give the recipient's public key (gpg --armor --export FINGERPRINT), and "
            "remove the secret key from wherever it was pasted",
        )
    if text.startswith(PUBLIC_KEY_HEADER) or _BLOCK_NAME.match(text):
        return
    raise ConfigurationError(
        f"{field}: neither an armored public key nor a saved block's name",
        field=field,
        hint=f"give the key as exported by gpg --armor --export (it starts with "
        f"{PUBLIC_KEY_HEADER}), or the name of an OpenPgpPublicKey block",
    )


class Destination(_Model):
    """Where the file goes: a URL template, optional compression and size-based splitting.

    The store's own rules (its scheme, its URLs, the names it writes) are checked by the
    flow's parameter type, flows/request.py's DestinationConfig, which knows the stores.
    """

    # Our messages name the offending value; pydantic's would add the whole input, and a
    # refused URL may carry a password.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(
        description="Target URL template, e.g. out/{export}-{date:%Y%m%d}.{ext}.",
    )
    block: str | None = Field(
        default=None, description="Name of a saved credentials block for the destination."
    )
    compression: Compression = Field(
        default="none",
        description=(
            "Whole-file codec: none, gzip (adds .gz), zstd (.zst), bz2 (.bz2) or xz (.xz); "
            "max_file_mb counts the compressed bytes."
        ),
    )
    max_file_mb: float | None = Field(
        default=None, gt=0, description="Split the output into numbered parts of about this size."
    )
    max_file_rows: int | None = Field(
        default=None,
        description=(
            "Split the output into numbered parts of at most this many rows (1 or more); with "
            "max_file_mb, the first limit reached cuts."
        ),
    )
    manifest: bool = Field(
        default=False,
        description=(
            "Write a JSON manifest next to the files once every one is published: the files "
            "with their rows, bytes and sha256, the columns, the snapshot or window. Its "
            "presence means the set is complete."
        ),
    )
    done_marker: str | None = Field(
        default=None,
        description=(
            "Write this empty file in the folder of the files once every file and the "
            "manifest are published, e.g. _SUCCESS or {export}-{date:%Y%m%d}.done (the URL's "
            "tokens but {part}); never for a failed or skipped run."
        ),
    )

    @field_validator("max_file_rows", mode="before")
    @classmethod
    def _whole_rows(cls, value: Any) -> Any:
        whole = isinstance(value, int) and not isinstance(value, bool)
        if value is not None and (not whole or value < 1):
            raise ConfigurationError(
                f"destination.max_file_rows: `{value}` is not a number of rows",
                field="destination.max_file_rows",
                hint="give a whole number of 1 or more, e.g. 100000",
            )
        return value

    @property
    def splits(self) -> bool:
        """Whether the output is cut into numbered parts (by size or by rows)."""
        return self.max_file_mb is not None or self.max_file_rows is not None

    pgp: PgpEncryption | None = Field(
        default=None,
        description=(
            "Encrypt every file with OpenPGP to these recipients (and sign it), after "
            "compression: orders.csv.gz.pgp (.asc armored); max_file_mb counts the encrypted "
            "bytes."
        ),
    )

    @property
    def scheme(self) -> str:
        return url_scheme(self.url)

    @property
    def file_codecs(self) -> str:
        """The layers over the format, as names and media types follow them: the codec,
        then the encryption (`gzip+pgp`, `none+asc`), or just the codec."""
        if self.pgp is None:
            return self.compression
        return f"{self.compression}+{self.pgp.extension}"


class FormatOptions(_Model):
    """Per-format knobs; every field has a default that suits most readers."""

    delimiter: str = Field(default=",", description="CSV field separator (one character).")
    line_terminator: Literal["lf", "crlf"] = Field(
        default="lf", description="CSV record separator: lf (\\n) or crlf (\\r\\n)."
    )
    header: bool = Field(default=True, description="Write a CSV header row.")
    xml_root: str = Field(default="root", description="Name of the XML root element.")
    xml_item: str = Field(default="item", description="Name of the XML element for each row.")
    xml_type_attributes: bool = Field(
        default=True, description='Add dicttoxml-style type="..." attributes to XML elements.'
    )
    parquet_compression: Literal["snappy", "zstd", "gzip", "none"] = Field(
        default="snappy", description="Parquet column compression codec."
    )
    # None, not "deflate": a run's parameters saved in full (Prefect stores every field) and
    # run again as a CSV export must not read as asking for an Avro codec.
    avro_codec: Literal["null", "deflate", "zstandard", "snappy"] | None = Field(
        default=None,
        description=(
            "Avro only: the codec of each block: deflate (the default; every Avro reader has "
            "it), zstandard, snappy or null (none)."
        ),
    )
    xslt: str | None = Field(
        default=None,
        description=(
            "XML only: an XSLT 1.0 stylesheet applied to the export: a path relative to the "
            "project folder, an absolute one, or a URL (s3://, gs://, az://, sftp://, "
            "https://). It may read files in its own folder only."
        ),
    )
    xslt_block: str | None = Field(
        default=None,
        description=(
            "A saved credentials block of the store the xslt URL names (as destination.block "
            "names one); without it the environment's credentials are used."
        ),
    )
    xslt_scope: Literal["item", "document"] = Field(
        default="item",
        description=(
            "item: each row's element is transformed on its own, as rows stream (memory stays "
            "flat); document: the whole document at once (grouping, sorting, totals)."
        ),
    )
    xslt_max_mb: float = Field(
        default=256,
        gt=0,
        description="xslt_scope: document: the largest XML document held for the stylesheet.",
    )
    ext: str | None = Field(
        default=None,
        description=(
            "The file extension ({ext}) of a transformed export; by default from the "
            "stylesheet's xsl:output (media-type, else method: txt, html, xml)."
        ),
    )
    encoding: Literal["utf-8", "utf-8-sig", "ascii", "latin-1", "utf-16"] = Field(
        default="utf-8",
        description=(
            "Character encoding of CSV, JSON and XML files: utf-8, utf-8-sig (with a BOM, "
            "for Excel), ascii, latin-1 or utf-16 (with a BOM). Parquet is always UTF-8."
        ),
    )
    on_unencodable: Literal["error", "replace", "escape"] = Field(
        default="error",
        description=(
            "A character the encoding cannot write: error (the export fails naming its row "
            "and column), replace (writes ?), or escape (XML &#NNN; and JSON \\uXXXX; not "
            "CSV)."
        ),
    )
    decimals: Literal["number", "string"] = Field(
        default="number",
        description=(
            "JSON and JSON Lines: decimals as numbers with their exact digits (12.50), or as "
            'strings ("12.50") for readers that would round a number to a double.'
        ),
    )

    preamble: str | None = Field(
        default=None,
        description=(
            "CSV, JSON Lines, XSLT text: a line written before the first row (before the CSV "
            "header); tokens {part}, {export}, {date}."
        ),
    )
    trailer: str | None = Field(
        default=None,
        description=(
            "CSV, JSON Lines, XSLT text: a line written after the last row of each file, e.g. "
            "TRL|{rows}|{date:%Y%m%d}; tokens {rows} (the file's), {total_rows} (one file "
            "only), {part}, {export}, {date}."
        ),
    )

    @field_validator("preamble", "trailer")
    @classmethod
    def _record_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            record_tokens(str(info.field_name), value)
        return value

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1 or value in '"\r\n':
            raise ValueError(
                f"format_options.delimiter: `{value}` must be one character other than a "
                "quote or a line break, e.g. `,`, `;`, `|` or a tab"
            )
        return value

    @field_validator("xml_root", "xml_item")
    @classmethod
    def _xml_name(cls, value: str, info: ValidationInfo) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", value) or value.lower().startswith("xml"):
            raise ValueError(
                f"format_options.{info.field_name}: `{value}` is not a valid XML element name; "
                "use letters, digits, _ . - and start with a letter or _"
            )
        return value

    @property
    def newline(self) -> str:
        return "\r\n" if self.line_terminator == "crlf" else "\n"


class RunnerConfig(_Model):
    """Where the partitions of a split read run. Without it: Prefect's thread pool in the
    flow's process."""

    dask: str = Field(
        description=(
            "A dask.distributed scheduler, tcp://HOST:8786 (its workers need this project "
            "installed and the destination reachable), or `local` for a cluster of worker "
            "processes on this machine."
        ),
    )

    @field_validator("dask")
    @classmethod
    def _scheduler(cls, value: str) -> str:
        if value != "local" and not re.match(r"^(tcp|tls|inproc|ucx|ws|wss)://[^/]+$", value):
            raise ValueError(
                f"runner.dask: `{value}` is not a scheduler address; write tcp://HOST:8786, or "
                "`local` for worker processes on this machine"
            )
        return value


class ChecksConfig(_Model):
    """What the written rows must pass before anything is published (flows/checks.py): a
    failed check publishes nothing and fails the run with CheckFailedError. Each is optional;
    the columns named must be exported ones (checked once the source is inspected)."""

    min_rows: int | None = Field(
        default=None, ge=0, description="The fewest rows the run may deliver."
    )
    max_rows: int | None = Field(default=None, ge=0, description="The most rows it may deliver.")
    max_change_pct: float | None = Field(
        default=None,
        description=(
            "How far, in percent, the rows may differ from the last successful run's of the "
            "same export (up or down); not checked before there is one."
        ),
    )
    not_null: list[str] = Field(
        default_factory=list, description="Columns that must hold no NULL (counted as written)."
    )
    unique: list[str] = Field(
        default_factory=list,
        description=(
            "Columns whose values together are unique among the written rows (asked of the "
            "database; rows with a NULL in one of them are not compared, as a UNIQUE "
            "constraint does)."
        ),
    )

    @field_validator("max_change_pct")
    @classmethod
    def _percentage(cls, value: float | None) -> float | None:
        if value is not None and (value < 0 or value != value):
            raise ValueError(
                f"checks.max_change_pct: `{value:g}` is not a percentage of zero or more; "
                "write e.g. 20 for 20%"
            )
        return value

    @field_validator("not_null", "unique")
    @classmethod
    def _column_names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for index, column in enumerate(value):
            if not column.strip():
                raise ValueError(
                    f"checks.{info.field_name}[{index}]: an empty column name; name an "
                    "exported column"
                )
        return value

    @model_validator(mode="after")
    def _rows_ordered(self) -> ChecksConfig:
        if self.min_rows is not None and self.max_rows is not None:
            if self.min_rows > self.max_rows:
                raise ValueError(
                    f"checks.min_rows: `{self.min_rows}` is more than checks.max_rows "
                    f"`{self.max_rows}`; no run could pass both"
                )
        return self

    @property
    def columns(self) -> list[tuple[str, str]]:
        """Each column a check names, with the check's field (`checks.unique[0]`)."""
        return [
            (f"checks.{check}[{index}]", column)
            for check in ("not_null", "unique")
            for index, column in enumerate(getattr(self, check))
        ]


class WindowConfig(_Model):
    """The time window an incremental export delivers: rows with since <= ts < until.

    Every field is optional: `since` comes from the deployment's schedule when not given,
    `until` from the run's scheduled time (or its start). See flows/sources/window.py for the
    rules.
    """

    since: datetime | None = Field(
        default=None,
        description=(
            "Start of the window (included), e.g. 2026-03-01T00:00:00+01:00; a value without "
            "an offset is read as UTC. By default the schedule's previous tick."
        ),
    )
    until: datetime | None = Field(
        default=None,
        description=(
            "End of the window (excluded); a value without an offset is read as UTC. By "
            "default the run's scheduled time, or its start for runs no schedule started."
        ),
    )
    lookback: timedelta = Field(
        default=timedelta(0),
        description=(
            "Subtracted from `since` so late-arriving rows are delivered again (overlap); "
            "seconds or ISO 8601, e.g. PT15M."
        ),
    )
    period: timedelta | None = Field(
        default=None,
        description=(
            "Window length used as since = until - period when the run has no schedule to "
            "take `since` from (API and one-time runs); seconds or ISO 8601, e.g. P1D."
        ),
    )
    timezone: str = Field(
        default="UTC",
        description=(
            "IANA time zone of the wall-clock values bound as `timestamp` or `text` and of "
            "the {since} / {until} destination tokens."
        ),
    )
    bind_as: Literal["timestamp", "timestamptz", "text", "epoch"] = Field(
        default="timestamp",
        description=(
            "How :since and :until are bound: timestamp (naive wall clock in `timezone`), "
            "timestamptz (with time zone), text (YYYY-MM-DD HH:MM:SS in `timezone`) or "
            "epoch (integer Unix seconds)."
        ),
    )

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("lookback")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError(
                f"window.lookback: `{value.total_seconds():g}` seconds is negative; "
                "use zero or a duration such as PT15M"
            )
        return _at_most_max_span(value, "lookback")

    @field_validator("period")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError(
                f"window.period: `{value.total_seconds():g}` seconds is not a positive "
                "duration; use e.g. P1D or PT4H"
            )
        return None if value is None else _at_most_max_span(value, "period")

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        return iana_zone(value, "window.timezone")

    @model_validator(mode="after")
    def _ordered(self) -> WindowConfig:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"window.since: `{self.since.isoformat()}` is not before window.until "
                f"`{self.until.isoformat()}`; the window is since <= ts < until"
            )
        return self

    @model_validator(mode="after")
    def _in_range(self) -> WindowConfig:
        """The times the run will compute from these (in UTC and in `timezone`, since less
        lookback, until less period) exist: else the run would fail half-way with an
        OverflowError, after the gateway had accepted it."""
        zone = ZoneInfo(self.timezone)
        bounds = {
            "since": (self.since, self.lookback, "window.lookback"),
            "until": (self.until, self.period if self.since is None else None, "window.period"),
        }
        for name, (value, less, less_name) in bounds.items():
            if value is None:
                continue
            try:
                moved = value.astimezone(UTC) - (less or timedelta(0))
                moved.astimezone(zone)
                value.astimezone(zone)
            except OverflowError:
                minus = f" less {less_name}" if less else ""
                zones = "UTC" if self.timezone == "UTC" else f"UTC or in {self.timezone}"
                raise ValueError(
                    f"window.{name}: `{value.isoformat()}`{minus} is outside the years 1 to "
                    f"9999 in {zones}; use a time well inside them"
                ) from None
        return self


def _at_most_max_span(value: timedelta, name: str) -> timedelta:
    if value > MAX_WINDOW_SPAN:
        raise ValueError(
            f"window.{name}: `{value.total_seconds():g}` seconds is longer than "
            f"{MAX_WINDOW_SPAN.days:,} days (1,000 years); use a shorter duration"
        )
    return value
