"""Watching the served model: its logged predictions, live performance and drift (no Dagster)."""
