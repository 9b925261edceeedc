"""How exports start and are looked back on: the `exports` command line (cli/), the API gateway
(gateway/), prefect.yaml's triggers (triggers/) and the audit log (audit.py)."""
