"""The API gateway (Contract 4): the FastAPI app (app.py), its API keys (keys.py) and their
master secrets (master_secrets.py), and a run's status and files (run_status.py). It never
reads or writes rows, so it loads neither pyarrow nor psycopg."""
