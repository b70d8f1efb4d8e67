"""Key material parsed from secret values: the JWT signing key ring (`signing.py`), the data-key
ring that encrypts secrets kept in the database (`data.py`, `column.py`) and the KMS keys that
may wrap it (`kms/`).

Pure: nothing of the app above `app.secrets`, so the secret declarations in `app/config.py` can
name these parsers and every layer above can use the parsed rings.
"""
