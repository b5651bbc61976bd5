# One image for every FluxPay process: the command picks the service (README, "Running in
# production"). Build anywhere with `docker build .`, or here without a daemon with `make image`
# (buildah, on a Debian base made by mmdebstrap: deploy/image/build.sh).
#
# BASE_IMAGE must provide `python3.11` with its `venv` module; both stages use the same one, so
# the virtual environment's interpreter link stays valid.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG UV_VERSION=0.13.9
# How this build reaches the package index, when the builder's network needs it: a mirror,
# and a CA bundle for a TLS-inspecting proxy (build.sh mounts the builder's). Build-stage only.
ARG PIP_INDEX_URL
ARG PIP_CERT
ARG SSL_CERT_FILE
ENV UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3.11 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3.11 -m venv /opt/uv && /opt/uv/bin/pip install --quiet "uv==${UV_VERSION}"
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# Every workspace member the lock names (the simulators, the merchant SDK): --frozen needs them.
COPY tools ./tools
COPY sdks ./sdks
# The lock is frozen (never re-resolved); no dev group; the workspace's own packages are
# installed as wheels so the runtime stage needs only the virtual environment.
RUN /opt/uv/bin/uv sync --all-packages --frozen --no-dev --no-editable --no-cache

FROM ${BASE_IMAGE}
# A fixed numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN echo 'fluxpay:x:10001:10001:FluxPay:/app:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'fluxpay:x:10001:' >> /etc/group
COPY --from=build /app/.venv /app/.venv
WORKDIR /app
ENV PATH="/app/.venv/bin:${PATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8 \
    FLUXPAY_GATEWAY_HOST=0.0.0.0 FLUXPAY_CONNECTOR_HTTP_HOST=0.0.0.0 FLUXPAY_HEALTH_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8000 8080
CMD ["fluxpay-gateway"]
