"""Application data keys: the `DATA_KEYS` ring, the encrypted column type and KMS key wrapping."""
