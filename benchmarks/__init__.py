"""Benchmarks for clauditor (run by hand or in CI; they print tables, they are not tests)."""
