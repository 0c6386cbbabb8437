"""Load benchmarks against a running backout API: webhook ingest and alert storms."""
