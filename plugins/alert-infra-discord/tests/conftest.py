# alert-infra's fixtures (provider_server, smtp_server, frozen_clock, leak_capture, ...): opt-in.
pytest_plugins = ["alert_infra.testing.pytest"]
