"""Benchmarks against what users would pick instead (issue #10); see benchmarks/README.md."""
