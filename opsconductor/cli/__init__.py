"""The `opsconductor` command."""
