"""Ingest: events and contacts come in (API, files), are checked field by field and stored once."""
