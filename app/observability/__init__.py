"""Request ids, the access log, audit events, Prometheus metrics and optional tracing."""
