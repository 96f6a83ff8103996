"""Workflows: deterministic code only. No I/O, no clock, no randomness; activities do those."""
