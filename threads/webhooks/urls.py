from django.urls import path

from . import views

urlpatterns = [
    path("webhooks", views.WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<str:webhook_id>", views.WebhookDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<str:webhook_id>/rotate-secret", views.WebhookRotateSecretView.as_view(), name="webhook-rotate-secret"
    ),
    path("webhooks/<str:webhook_id>/deliveries", views.WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
]
