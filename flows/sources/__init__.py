"""Reading a source: inspect it (plan.py), connect (connections.py), stream record batches
(read.py) through PostgreSQL's COPY (postgres.py, pg_render.py) or SQLAlchemy (values.py), for
the run's window (window.py); driver errors become typed errors (failures.py)."""
