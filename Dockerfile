# One image for every FluxPay service; the command picks the service.
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs ./libs
COPY services ./services
# Workspace members the lock names (the simulators, the merchant SDK): --frozen needs them.
COPY tools ./tools
COPY sdks ./sdks
RUN uv sync --all-packages --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 fluxpay
WORKDIR /app
COPY --from=build /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1
USER fluxpay
CMD ["fluxpay-gateway"]
