# fastapi-secrets-template-reader: read these two KV v2 entries, nothing else (no list, no write,
# no metadata). Paths are KV v2 API paths: <mount>/data/<path>.
path "secret/data/fastapi-secrets-template/prod" {
  capabilities = ["read"]
}

path "secret/data/fastapi-secrets-template/jwt" {
  capabilities = ["read"]
}
