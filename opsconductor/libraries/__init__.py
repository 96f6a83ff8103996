"""Built-in step libraries, shipped as documents in this package (see docs/libraries.md)."""
