"""Prefect flows and the streaming export pipe (extract → format → deliver → record)."""
