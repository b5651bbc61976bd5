# FluxPay: the two commands are `make up` (run the platform) and `make test` (run every test).
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# uv from PATH, or installed from PyPI into the machine's Python on first use.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: install up test test-fast lint bench chaos clean image image-tools image-test k8s-validate compose-validate

install:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
		|| python3 -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --all-packages --frozen --quiet
	@# The hosted checkout test drives Debian's chromium (Playwright without its own browsers).
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: chromium not installed; the hosted checkout browser test will fail"

up: install
	$(UV) run --no-sync honcho start -f Procfile

test: install
	$(UV) run --no-sync pytest

test-fast: install
	$(UV) run --no-sync pytest -m "not e2e and not contract"

lint: install
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .

# The one image of every service, built without a Docker daemon (buildah on an mmdebstrap
# Debian base; deploy/image/build.sh). IMAGE=... BASE_IMAGE=... override the names.
image: image-tools
	@time bash deploy/image/build.sh

image-tools:
	@command -v buildah >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah mmdebstrap >/dev/null; } \
		|| { echo "make image needs buildah and mmdebstrap (apt-get install buildah mmdebstrap)"; exit 1; }

# Builds the image and runs every entry point in it, the gateway against the local servers.
image-test: install image-tools
	FLUXPAY_IMAGE_TESTS=1 $(UV) run --no-sync pytest tests/deploy/test_image.py

# Renders deploy/k8s/overlays/* and validates every object offline (also part of `make test`).
k8s-validate: install
	$(UV) run --no-sync python deploy/k8s/validate.py

# docker-compose.yml against the Compose specification's schema (also part of `make test`).
compose-validate: install
	$(UV) run --no-sync pytest -q tests/deploy/test_compose.py

# e.g. make bench BENCH_ARGS="--duration 600 --rate 25 --profile webhooks"
bench: install
	$(UV) run --no-sync python -m tests.bench.run $(BENCH_ARGS)

chaos: install
	$(UV) run --no-sync python -m tests.chaos.run

clean:
	rm -rf .venv .pytest_cache .ruff_cache .mypy_cache artifacts .cache
