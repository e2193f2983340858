"""Reporting: what a marketer or client reads: per-campaign outcomes, conversions and lift."""
