# One image for `backout worker` and `backout api` (docker-compose.yml runs both).
# Configured only through BACKOUT_* environment variables; see config/settings.py.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BACKOUT_STATE_DIR=/var/lib/backout

# git: the GitOps handshake clones, reverts and pushes (docs/gitops.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
# The product's dependencies exactly as pinned, with their hashes (requirements-product.lock,
# `make lock`), then backout itself without resolving anything again.
RUN pip install --require-hashes -r /src/requirements-product.lock \
    && pip install --no-deps /src \
    && useradd --system --uid 10001 --home-dir /var/lib/backout --create-home backout \
    && rm -rf /src

WORKDIR /var/lib/backout
USER backout
EXPOSE 8080
ENTRYPOINT ["backout"]
CMD ["--help"]
