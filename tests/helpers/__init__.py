"""Helpers shared by the tests: campaign and definition sets, statement capture, waiting, a throwaway PostgreSQL."""
