# Two stages: `builder` resolves the dependencies into a virtualenv; `runtime` is a slim image
# holding only that venv, the app source, the migrations and alembic.ini, run as a non-root UID.
#
#   docker build -t fastapi-secrets-template .                    # core dependencies only
#   docker build --build-arg EXTRAS=aws -t fastapi-secrets-template .   # + a cloud secret manager SDK
#
# The base image is pinned to an exact patch release. For reproducible production builds pin
# it by digest too (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it):
#   --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

# uv installs the dependencies exactly as pinned in uv.lock (the lock `make install` uses too).
# uv comes from PyPI, pinned (keep UV_VERSION equal to the Makefile's). The OS trust store is used
# so a TLS-intercepting proxy's CA, when one is installed there, is trusted.
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_SYSTEM_CERTS=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1
WORKDIR /build
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# Dependencies only (cached until pyproject.toml or uv.lock change): the app itself is not
# installed, the runtime runs it from /app. `--locked` fails the build if the lock is stale
# (run `make lock`). EXTRAS is comma-separated (`aws`, `aws,vault`, `cloud`). Every dependency
# ships wheels for this platform, so no compiler is installed; if one ever needs building, add
# `build-essential` HERE only, never in the runtime stage.
ARG EXTRAS=""
COPY pyproject.toml uv.lock ./
RUN set -e; set --; IFS=','; \
    for extra in ${EXTRAS}; do set -- "$@" --extra "${extra}"; done; unset IFS; \
    uv sync --locked --no-install-project --no-dev --python "$(command -v python)" "$@"

FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="fastapi-secrets-template" \
      org.opencontainers.image.description="FastAPI backend with secrets from env, files, mounted dirs and cloud secret managers"

# A fixed numeric UID/GID so Kubernetes `runAsNonRoot` can verify it and `fsGroup` can match it.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    GRACEFUL_TIMEOUT_SECONDS=20
# Secrets are read from /run/secrets/<name> (the app's default SECRETS_DIR), where compose and
# the Kubernetes manifests mount them; nothing secret is ever baked into the image.

WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
# Source is owned by root and read-only for the app user: the process cannot rewrite its own code.
COPY alembic.ini ./
COPY migrations ./migrations
COPY app ./app
# Container-side helper for the key-rotation CronJob (k8s/components/jwt-rotation).
COPY docker/rotate_k8s_secret.py ./docker/rotate_k8s_secret.py
RUN python -m compileall -q /app/app /app/migrations /app/docker

USER ${APP_UID}:${APP_GID}
EXPOSE 8000

# Liveness only (no dependencies), with the standard library: the image ships no curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=2)"]

# Exec form: python is PID 1 and receives SIGTERM itself; uvicorn then drains for
# GRACEFUL_TIMEOUT_SECONDS. Other commands: `docker run IMAGE migrate`, `... config check`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "app"]
CMD ["serve"]
