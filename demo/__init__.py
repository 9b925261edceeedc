"""The bundled demo: a SQLite database of customers and orders (demo.sqlite) and the code that
builds it (build.py), for the quick start, the docs and the tests."""
