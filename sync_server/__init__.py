"""HQ: exactly-once ingest, the change feed, the single customer view, recommendations."""
