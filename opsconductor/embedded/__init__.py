"""The embedded default: PostgreSQL and the Temporal dev server as child processes of `up`."""
