"""The HTTP side: the ingest API now; webhooks and agent pages are included by `create_app`."""
