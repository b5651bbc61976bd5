pytest_plugins = ["fluxpay_common.testing"]
