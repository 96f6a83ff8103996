"""Domain logic, one module per domain. Services take a session and never commit."""
