"""The quick-start demo: one alert through the console channel.

Run it with ``nox -s demo`` (or ``python docs/examples/demo.py`` with the core installed).
"""

from alert_infra import Alert, AlertDispatcher, ConsoleTransport

dispatcher = AlertDispatcher([ConsoleTransport(stream="stdout")])
result = dispatcher.send(
    Alert(
        title="Payment provider timeout",
        message="The payment provider did not answer within 10 seconds.\nRetries are exhausted.",
        severity="critical",
        source="billing-service",
        tags=("payments", "provider"),
        metadata={
            "invoice_id": "INV-1001",
            "provider": "acme-pay",
            "api_key": "sk_live_this_value_is_redacted",
            "callback": "https://ops:hunter2@hooks.example.com/pay?token=abc123",
        },
        links={"Runbook": "https://runbooks.example.com/payments/timeout"},
    )
)
print(f"delivered to: {', '.join(result.sent)}; ok={result.ok}")
