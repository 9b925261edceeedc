"""XML in dicttoxml's document layout, written as a stream (dicttoxml itself is far too slow)."""

from __future__ import annotations

import logging
from typing import BinaryIO

import dicttoxml
import pyarrow as pa

from flows.core.columns import Kind
from flows.core.config import FormatOptions
from flows.core.records import FileRecords
from flows.formats import render
from flows.formats.writers import TextWriter, kinds_of
from flows.formats.xml_names import element_name

logging.getLogger("dicttoxml").setLevel(logging.WARNING)  # it logs every call at INFO
XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8" ?>'


class XmlWriter(TextWriter):
    """dicttoxml's document layout for a list of row dicts, written as a stream.

    Element names come from dicttoxml itself (`make_valid_xml_name`), once per column, so a
    column that is not a valid XML name becomes `<key name="...">` exactly as dicttoxml does.
    """

    escapes_as = "xml"

    def __init__(
        self,
        file: BinaryIO,
        schema: pa.Schema,
        options: FormatOptions,
        records: FileRecords | None = None,
    ) -> None:
        self._tags: dict[tuple[int, Kind], tuple[str, str, str]] = {}
        super().__init__(file, schema, options, records)

    def _tag(self, index: int, kind: Kind) -> tuple[str, str, str]:
        key = (index, kind)
        if key not in self._tags:
            name = self.schema.names[index]
            self._tags[key] = _xml_tags(name, kind, self.options.xml_type_attributes)
        return self._tags[key]

    def header(self) -> str:
        declaration = XML_DECLARATION.replace("UTF-8", self.encoder.declared_name)
        return f"{declaration}<{self.options.xml_root}>"

    def footer(self) -> str:
        return f"</{self.options.xml_root}>"

    def render(self, batch: pa.RecordBatch) -> pa.Array:
        item = self.options.xml_item
        type_attr = ' type="dict"' if self.options.xml_type_attributes else ""
        parts: list[pa.Array | str] = [f"<{item}{type_attr}>"]
        for index, kind in enumerate(kinds_of(batch)):
            open_tag, close_tag, null_element = self._tag(index, kind)
            parts.append(
                render.xml_elements(batch.column(index), kind, open_tag, close_tag, null_element)
            )
        parts.append(f"</{item}>")
        return render.concat(parts)


def _xml_tags(column: str, kind: Kind, type_attributes: bool) -> tuple[str, str, str]:
    """(open tag, close tag, NULL element) for one column, named the way dicttoxml names it."""
    name, attrs = element_name(column)
    null_attrs = dict(attrs)
    if type_attributes:
        attrs["type"] = render.XML_TYPE_NAMES.get(kind, "str")
        null_attrs["type"] = "null"
    open_tag = f"<{name}{dicttoxml.make_attrstring(attrs)}>"
    null_element = f"<{name}{dicttoxml.make_attrstring(null_attrs)}></{name}>"
    return open_tag, f"</{name}>", null_element
