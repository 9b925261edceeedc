"""Real servers on 127.0.0.1 for the tests and the benchmarks, started and stopped by us: one
module per server (postgres, mariadb, s3, gcs, azurite, sftp, receiver, prefect_api), and the
faults put in front of them (fault_proxy, tcp_cutter, disk, probe)."""
