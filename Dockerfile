# syntax=docker/dockerfile:1
# One image for every service. A Kubernetes Deployment picks the service with its
# command, `python -m services.<name>` (deploy/k8s/base); so does `docker run`:
#   docker build -t e112 .
#   docker run --rm -e E112_ENV=development -e PORT=8001 -e DATABASE_URL=... e112 python -m services.intake
#
# Reproducible: the base image is pinned by digest, and the Python packages are the exact,
# hash-checked versions of requirements.lock (the run-time part of it: see
# deploy/image/runtime_requirements.py). To move to a newer base, look its digest up with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and change it here.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
COPY requirements.lock pyproject.toml deploy/image/runtime_requirements.py ./
# --require-hashes: every package, dependencies included, must match the lock's hash.
# pip check: the installed set is complete and consistent.
RUN python runtime_requirements.py requirements.lock pyproject.toml > runtime.lock \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes -r runtime.lock \
    && /opt/venv/bin/pip check

FROM ${PYTHON_IMAGE}
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 e112 \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin e112
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY schemas/ schemas/
COPY services/ services/
COPY deploy/image/healthcheck.py healthcheck.py
# Compiled now, as root: the containers run with a read-only root file system.
RUN /opt/venv/bin/python -m compileall -q schemas services healthcheck.py
# E112_ENV=production: a container refuses to start on development defaults unless told
# otherwise (services/common/settings.py). HOST: listen beyond the container's loopback.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    E112_ENV=production \
    HOST=0.0.0.0
USER 10001:10001
EXPOSE 8001 8002 8003 8004 8005
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["python", "/app/healthcheck.py"]
CMD ["python", "-m", "services.intake"]
