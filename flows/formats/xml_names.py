"""How a column's name becomes an XML element: exactly as dicttoxml makes it (`a b` → `a_b`,
`1st` → `<key name="1st">`), after replacing the characters XML 1.0 forbids. No pyarrow here:
parameter checks use it before a run."""

from __future__ import annotations

import re

import dicttoxml

XML_FORBIDDEN = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
XML_REPLACEMENT = "\ufffd"


def element_name(column: str) -> tuple[str, dict[str, str]]:
    """(element name, attributes) of a column's elements."""
    safe = re.sub(XML_FORBIDDEN, XML_REPLACEMENT, column)
    name, attributes = dicttoxml.make_valid_xml_name(safe, {})
    return name, dict(attributes)


def same_element(names: list[str]) -> tuple[str, str] | None:
    """Two of `names` whose elements cannot be told apart, if any."""
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    for name in names:
        element, attributes = element_name(name)
        key = (element, tuple(sorted(attributes.items())))
        if key in seen:
            return seen[key], name
        seen[key] = name
    return None
