pytest_plugins = ["fluxpay_testing.infra"]
