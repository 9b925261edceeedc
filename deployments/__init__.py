"""How exports start: the CLI, prefect.yaml deployments and the demo data."""
