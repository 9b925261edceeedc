"""prefect.yaml's triggers (Contract 2): reading the project file (project.py), checking it
(check.py), next run times (schedules.py), and serving the triggers from one process (serve.py,
warm_start.py) or with a server, a work pool and a worker (serve.sh, `make serve`)."""
