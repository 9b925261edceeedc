"""Writing the formats: the registry of formats (registry.py), one streaming writer per format
(*_writer.py, on writers.py's base), the Arrow schema they share with the sources (columns.py)
and the canonical text of values (render.py)."""
