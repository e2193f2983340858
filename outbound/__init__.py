"""outbound: a proactive outbound engagement engine."""

__version__ = "0.1.0"
