"""The bottom layer: what every stage may import (errors, the request's types, format names and
media types, URL parsing and templates, zones, the Arrow column contract, Prefect's private
pieces behind one door). It imports no other part of `flows`."""
