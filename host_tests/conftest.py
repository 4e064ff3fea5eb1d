pytest_plugins = ["mp_plugin"]
