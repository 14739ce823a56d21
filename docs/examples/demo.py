"""The Python side of the quick start: one alert through the console channel, in code.

Run it with ``python docs/examples/demo.py`` once the core is installed (``nox -s demo``
shows the same through the ``alert-infra`` command). ``tests/test_docs.py`` runs it.
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
