pytest_plugins = ["opsgate.testing"]
