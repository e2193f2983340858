"""Tenancy: tenants (the brands), their API keys and their agents' accounts."""
