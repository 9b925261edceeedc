"""The run as Prefect keeps it: its tags (who started it), its names, the result it
records, and reading its artifacts back."""
