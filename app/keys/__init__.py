"""Key material parsed from secret values: the JWT signing key ring (and the data-key ring).

Pure: no I/O and nothing of the app above `app.secrets`, so the secret declarations in
`app/config.py` can name these parsers and every layer above can use the parsed rings.
"""
