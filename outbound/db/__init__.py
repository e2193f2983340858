"""The database layer: engine, sessions, migrations."""
