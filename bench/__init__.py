"""Benchmarks: run with `make bench`; never run by the tests."""
