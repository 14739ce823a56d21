"""Views of the test project: the 0.1.x README's view, as written, and a failing view."""

from __future__ import annotations

from django.http import JsonResponse

from alert_infra.django import send_alert


class Invoice:
    """The README's invoice, in memory."""

    def __init__(self, invoice_id: int) -> None:
        self.id = invoice_id
        self.status = "paid" if invoice_id % 2 == 0 else "draft"

    def can_transition_to(self, status: str) -> bool:
        return self.status != status

    def mark_paid(self) -> None:
        self.status = "paid"


def get_invoice(invoice_id: int) -> Invoice:
    return Invoice(invoice_id)


# --- the 0.1.x README's "Send an alert from a Django view", as written -------------------------
def update_invoice(request, invoice_id):
    invoice = get_invoice(invoice_id)
    request_id = request.headers.get("X-Request-ID")  # the README uses a request_id from the app

    if not invoice.can_transition_to("paid"):
        result = send_alert(
            title="Suspicious invoice update",
            message="Invoice status transition was blocked.",
            severity="warning",
            source="invoice-view",
            tags=("invoice", "security"),
            metadata={
                "invoice_id": invoice.id,
                "user_id": request.user.id,
                "authorization": request.headers.get("Authorization"),
            },
            request_id=request_id,
            request=request,
        )
        return JsonResponse({"ok": False, "alert_sent": result.ok}, status=409)

    invoice.mark_paid()
    return JsonResponse({"ok": True})


class ReportFailed(RuntimeError):
    pass


def failing_report(request, report_id):
    raise ReportFailed(f"report {report_id} failed; upstream said token=sk_live_abcdefghijklmnop1234")
