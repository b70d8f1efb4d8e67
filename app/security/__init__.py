"""Key ring, token service and password hashing."""
