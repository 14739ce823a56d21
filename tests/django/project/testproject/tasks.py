"""The 0.1.x README's "Send an alert from a Celery task in a Django project", as written."""

from celery import shared_task

from alert_infra.django import send_alert


class InvoiceProcessingError(Exception):
    pass


def process(invoice_id):
    raise InvoiceProcessingError(f"invoice {invoice_id} could not be processed")


@shared_task(bind=True)
def process_invoice(self, invoice_id):
    try:
        process(invoice_id)
    except Exception as exc:
        send_alert(
            title="Invoice task failed",
            message=exc.__class__.__name__,
            severity="error",
            source="celery:process_invoice",
            metadata={"invoice_id": invoice_id, "task_id": self.request.id},
        )
        raise
