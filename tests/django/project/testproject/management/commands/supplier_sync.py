"""The 0.1.x README's "Send an alert from a Django management command", as written."""

from django.core.management.base import BaseCommand

from alert_infra.django import send_alert


class SupplierUnavailable(Exception):
    pass


def synchronize_supplier_data():
    raise SupplierUnavailable("supplier API returned 503")


class Command(BaseCommand):
    help = "Run supplier synchronization"

    def handle(self, *args, **options):
        try:
            synchronize_supplier_data()
        except Exception as exc:
            send_alert(
                title="Supplier sync failed",
                message=exc.__class__.__name__,
                severity="critical",
                source="management-command:supplier_sync",
                metadata={"command": "supplier_sync"},
            )
            raise
