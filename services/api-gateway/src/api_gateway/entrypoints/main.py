"""`fluxpay-gateway`: the merchant API on FLUXPAY_GATEWAY_HOST:FLUXPAY_GATEWAY_PORT."""

from __future__ import annotations

from api_gateway.app import serve
from api_gateway.config import Settings
from fluxpay_common import runtime


def main() -> None:
    runtime.parse_service_args("fluxpay-gateway", __doc__)
    settings = Settings()
    runtime.bootstrap_process("gateway", settings)
    runtime.run(lambda: serve(settings))


if __name__ == "__main__":
    main()
