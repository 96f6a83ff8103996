"""Activities: everything that touches a socket, a file, the database or the clock."""
