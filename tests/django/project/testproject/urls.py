from django.urls import path

from testproject import views

urlpatterns = [
    path("invoices/<int:invoice_id>/pay/", views.update_invoice, name="update-invoice"),
    path("reports/<int:report_id>/", views.failing_report, name="failing-report"),
]
