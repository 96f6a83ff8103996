"""Keys, password hashing, tokens and access control."""
