"""Kept only for bench/common.py, which imports `pgserver` from this folder: the server is helpers/postgres_server.py.
Remove once the benchmarks import `helpers.postgres_server`."""

from helpers.postgres_server import PostgresServer

__all__ = ["PostgresServer"]
