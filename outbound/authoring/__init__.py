"""Authoring: what a marketer runs before a campaign goes live: preview and dry run."""
