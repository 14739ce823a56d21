# alert-infra's fixtures (provider_server, leak_capture, ...): opt-in.
pytest_plugins = ["alert_infra.testing.pytest"]
