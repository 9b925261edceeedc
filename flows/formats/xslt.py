"""XSLT 1.0 stylesheets (lxml/libxslt) over the XML export: `format_options.xslt`.

`xslt_scope: item` transforms each row's `<item>` on its own as rows stream past, so memory
stays flat; `document` transforms the whole document at the end (grouping, sorting, totals),
spooled to a temporary file and refused above `xslt_max_mb`. A stylesheet reads nothing but
files in its own folder, local or at a URL (flows/formats/stylesheets.py): no network, no
other file (an `XSLTAccessControl` that denies all, and a resolver that serves only the
stylesheet's folder).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, Any, BinaryIO

import pyarrow as pa
from lxml import etree

from flows.core.config import FormatOptions
from flows.core.errors import ConfigurationError, FormatError
from flows.core.records import FileRecords
from flows.core.urls import without_secrets
from flows.formats.encoding import ENCODINGS, Encoder
from flows.formats.stylesheets import StylesheetFolder, is_url, read_stylesheet
from flows.formats.writers import BatchWriter
from flows.formats.xml_writer import XmlWriter

XSLT_NS = "http://www.w3.org/1999/XSL/Transform"
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a document-scope spool moves to disk past this
_MEDIA_TYPES = {"xml": "application/xml", "html": "text/html", "text": "text/plain"}
_EXTENSIONS = {
    "application/xml": "xml",
    "text/xml": "xml",
    "text/html": "html",
    "text/plain": "txt",
    "text/csv": "csv",
    "application/json": "json",
}


class _FolderResolver(etree.Resolver):  # type: ignore[misc]
    """Serves xsl:include, xsl:import and document() from the stylesheet's folder only."""

    def __init__(self, folder: StylesheetFolder) -> None:
        super().__init__()
        self.folder = folder

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:  # noqa: ARG002
        data = self.folder.read(system_url) if self.folder.holds(system_url) else None
        if data is not None:
            return self.resolve_string(data, context, base_url=system_url)
        raise FormatError(
            f"format_options.xslt: the stylesheet tried to read `{without_secrets(system_url)}`;"
            f" a stylesheet may read only files in its own folder ({self.folder.shown})"
        )


@dataclass(frozen=True)
class Stylesheet:
    """A compiled stylesheet and what its xsl:output says the result is."""

    path: str
    transform: etree.XSLT = field(repr=False, compare=False)
    method: str  # xml, html or text
    media_type: str

    @property
    def extension(self) -> str:
        return _EXTENSIONS.get(self.media_type, "txt" if self.method == "text" else self.method)

    def apply(self, document: Any) -> Any:
        """Run the transform; its errors (xsl:message terminate="yes" among them) name the
        stylesheet and say what libxslt said."""
        try:
            return self.transform(document)
        except etree.XSLTApplyError as exc:
            raise FormatError(
                f"format_options.xslt: `{self.path}` stopped: {_messages(exc)}"
            ) from None

    def text(self, result: Any) -> str:
        """The result as text: the root element for XML (no declaration), else the text."""
        if self.method == "xml":
            root = result.getroot()
            return "" if root is None else etree.tostring(root, encoding="unicode")
        return str(result)


def _messages(exc: Exception) -> str:
    log = getattr(exc, "error_log", None)
    lines = [entry.message.strip() for entry in log] if log else []
    return "; ".join(line for line in lines if line) or str(exc)


def resolve_stylesheet(path: str, root: Path | None = None) -> str:
    """The stylesheet's location: a URL as given, or the file of a path relative to the
    project (the working folder), absolute, or file://, which must exist."""
    if is_url(path):
        return path
    found = Path(path.removeprefix("file://"))
    if not found.is_absolute():
        found = (root or Path.cwd()) / found
    if not found.is_file():
        raise ConfigurationError(
            f"format_options.xslt: no stylesheet at `{path}` (looked for {found})",
            field="format_options.xslt",
            hint="give a path "
            "relative to the project folder, an absolute one, or a URL (s3://, gs://, az://, "
            "sftp://, https://)",
        )
    return str(found.resolve())


def options_stylesheet(options: FormatOptions) -> Stylesheet:
    """The compiled stylesheet `options.xslt` names (read once per process)."""
    assert options.xslt is not None
    return load_stylesheet(resolve_stylesheet(options.xslt), options.xslt_block)


@cache
def load_stylesheet(location: str, block: str | None = None) -> Stylesheet:
    """Read, parse and compile a stylesheet, with a message naming the file and line on
    failure."""
    folder = StylesheetFolder.of(location, block)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_FolderResolver(folder))
    file = without_secrets(location)
    try:
        document = etree.ElementTree(
            etree.fromstring(read_stylesheet(location, folder), parser, base_url=location)
        )
    except etree.XMLSyntaxError as exc:
        raise ConfigurationError(
            f"format_options.xslt: `{file}` is not well-formed XML (line {exc.lineno}): {exc.msg}",
            field="format_options.xslt",
        ) from None
    access = etree.XSLTAccessControl.DENY_ALL
    try:
        transform = etree.XSLT(document, access_control=access)
    except (etree.XSLTParseError, FormatError) as exc:
        lines = {entry.line for entry in getattr(exc, "error_log", [])} - {0}
        where = f" (line {min(lines)})" if lines else ""
        raise ConfigurationError(
            f"format_options.xslt: `{file}`{where} is not a valid XSLT 1.0 stylesheet: "
            f"{_messages(exc)}",
            field="format_options.xslt",
        ) from None
    output = document.getroot().find(f"{{{XSLT_NS}}}output")
    method = (output.get("method") if output is not None else None) or "xml"
    media = (output.get("media-type") if output is not None else None) or _MEDIA_TYPES.get(
        method, "application/xml"
    )
    return Stylesheet(str(file), transform, method, media)


class XsltItemWriter(XmlWriter):
    """`xslt_scope: item`: each row's `<item>` through the stylesheet as it streams past;
    an XML result keeps the document's root element around the transformed items."""

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        assert options.xslt is not None
        self.stylesheet = options_stylesheet(options)
        super().__init__(file, schema, options, records)

    def header(self) -> str:
        return super().header() if self.stylesheet.method == "xml" else ""

    def footer(self) -> str:
        return super().footer() if self.stylesheet.method == "xml" else ""

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        items = super().render(batch).to_pylist()
        sheet = self.stylesheet
        results = [sheet.text(sheet.apply(etree.fromstring(item))) for item in items]
        return pa.array(results, pa.string())


class XsltDocumentWriter(BatchWriter):
    """`xslt_scope: document`: the whole XML document, spooled (to disk past a few MB and
    refused past xslt_max_mb), through the stylesheet when the part is complete."""

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        assert options.xslt is not None
        super().__init__(file, schema, options, records)
        self.stylesheet = options_stylesheet(options)
        self._spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        plain = options.model_copy(update={"encoding": "utf-8", "on_unencodable": "error"})
        self._xml = XmlWriter(self._spool, schema, plain)  # type: ignore[arg-type]
        self._limit = int(options.xslt_max_mb * 1024 * 1024)

    def write(self, batch: pa.RecordBatch, budget: int | None = None) -> int:  # noqa: ARG002
        count = self._xml.write(batch)
        self.rows += count
        if self._xml.bytes > self._limit:
            raise FormatError(
                f"format_options.xslt_max_mb: the XML document passed {self._limit // 2**20} MB "
                "before its stylesheet ran (xslt_scope: document holds it whole); use "
                "xslt_scope: item, raise xslt_max_mb, or split with destination.max_file_mb"
            )
        return count

    def abandon(self) -> None:
        """The stylesheet never runs over a document that is thrown away."""
        self._spool.close()

    def close(self) -> None:
        self._xml.close()
        self._spool.seek(0)
        parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
        document = etree.parse(self._spool, parser)
        self._spool.close()
        text = self.stylesheet.text(self.stylesheet.apply(document))
        if self.stylesheet.method == "xml":
            declaration = f'<?xml version="1.0" encoding="{ENCODINGS[self.options.encoding][2]}" ?>'
            text = declaration + text
        del document
        if self.records is not None:  # a text result: its preamble and trailer lines
            text = self.records.first() + text + self.records.last(self.rows)
        encoder = Encoder(self.options.encoding, self.options.on_unencodable, "xml")
        if encoder.bom:
            self._emit(encoder.bom)
        try:
            self._emit(encoder.encode(text.encode()))
        except UnicodeEncodeError as exc:
            char = exc.object[exc.start]
            raise FormatError(
                f"format_options.encoding: the stylesheet's result holds {char!r} "
                f"(U+{ord(char):04X}), which {self.options.encoding} cannot write"
            ) from None


def xslt_file_name_extension(options: FormatOptions) -> str | None:
    """The `{ext}` of a transformed export: the `ext` option, else the stylesheet's."""
    if options.xslt is None:
        return None
    if options.ext:
        return options.ext
    return options_stylesheet(options).extension


def stylesheet_media_type(options: FormatOptions) -> str | None:
    if options.xslt is None:
        return None
    return options_stylesheet(options).media_type
