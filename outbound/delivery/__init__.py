"""Delivery: what providers and recipients report back: status reports, inbound SMS keywords, suppressions."""
