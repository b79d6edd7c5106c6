"""The admin of webhook endpoints: create (secret shown once), edit, recent deliveries, retry a
failed delivery, send a test event. Every write goes through ``threads.webhooks.services``."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from threads.admin import OrgScopedAdmin
from threads.errors import ThreadError

from . import services
from .models import Delivery, WebhookEndpoint

RECENT = 20
FIELDS = {"url": "url", "actions": "actions", "description": "description", "is_active": "isActive"}


def endpoint_state(endpoint: WebhookEndpoint) -> str:
    """Healthy, failing, circuit open (next probe) or disabled — with the reason."""
    if not endpoint.is_active:
        return f"disabled: {endpoint.disabled_reason}" if endpoint.disabled_reason else "inactive"
    if endpoint.next_probe_at:
        probe = f"{endpoint.next_probe_at:%Y-%m-%d %H:%M:%S}"
        return f"circuit open: {endpoint.consecutive_failures} failures in a row, next probe {probe}"
    if endpoint.consecutive_failures:
        return f"failing: {endpoint.consecutive_failures} failures in a row"
    return "healthy"


class WebhookEndpointForm(forms.ModelForm):
    actions = forms.MultipleChoiceField(
        choices=[(action, action) for action in services.ACTIONS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every action.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["organization", "url", "actions", "description", "is_active"]

    def clean(self):
        cleaned = super().clean()
        self.body = {wire: cleaned.get(attr) for attr, wire in FIELDS.items() if attr in cleaned}
        if not self.errors:
            try:
                services.parse(self.body, creating=True)  # the services' own checks, URL safety included
            except ThreadError as error:
                self.add_error(error.param if error.param in self.fields else None, error.message)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(OrgScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "organization", "is_active", "state", "actions", "created_at"]
    list_filter = ["organization", "is_active"]
    search_fields = ["url", "description"]
    list_select_related = ["organization"]
    readonly_fields = [
        "id",
        "state",
        "consecutive_failures",
        "failing_since",
        "next_probe_at",
        "disabled_at",
        "created_at",
        "updated_at",
        "recent_deliveries",
    ]
    actions = ["enable", "send_test_event", "rotate_secret"]

    def get_fields(self, request, obj=None):
        fields = ["organization", "url", "actions", "description", "is_active"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "organization"] if obj else []

    @admin.display(description="state")
    def state(self, obj):
        return endpoint_state(obj)

    @admin.display(description=f"Recent deliveries (newest {RECENT})")
    def recent_deliveries(self, obj):
        rows = obj.deliveries.order_by("-id")[:RECENT]
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    d.message_id,
                    d.event_id or "test",
                    d.status,
                    d.attempts,
                    d.last_status_code or "",
                    d.last_error,
                    d.next_attempt_at or "",
                )
                for d in rows
            ),
        )
        return format_html(
            "<table><tr><th>webhook-id</th><th>event</th><th>status</th><th>attempts</th>"
            "<th>last answer</th><th>last error</th><th>next attempt</th></tr>{}</table>",
            body,
        )

    def save_model(self, request, obj, form, change):
        if change:
            changed = {FIELDS[attr]: form.body[FIELDS[attr]] for attr in form.changed_data if attr in FIELDS}
            services.endpoint_update(org=obj.organization, endpoint_id=obj.pk, data=changed)
        else:
            endpoint = services.endpoint_create(org=form.cleaned_data["organization"], data=form.body)
            obj.pk = endpoint.pk
            self._show_secret(request, endpoint)
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.endpoint_delete(org=obj.organization, endpoint_id=obj.pk)

    def _show_secret(self, request, endpoint):
        self.message_user(
            request,
            f"The signing secret of {endpoint.url} is {endpoint.secret} — copy it now: it is shown only this once.",
            messages.WARNING,
        )

    @admin.action(
        description="Re-enable selected endpoints (a disabled one's reason is cleared)", permissions=["change"]
    )
    def enable(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_enable(org=endpoint.organization, endpoint_id=endpoint.pk)
        self.message_user(
            request, f"{len(queryset)} endpoints are active; they receive the events from now on.", messages.SUCCESS
        )

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request, queryset):
        for endpoint in queryset:
            delivery = services.send_test_event(endpoint)
            self.message_user(
                request,
                f"Test event {delivery.message_id} queued for {endpoint.url}; a running deliver_webhooks sends it.",
                messages.SUCCESS,
            )

    @admin.action(description="Rotate the signing secret (the old one signs for 24 hours)", permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            self._show_secret(
                request, services.endpoint_rotate_secret(org=endpoint.organization, endpoint_id=endpoint.pk)
            )


@admin.register(Delivery)
class DeliveryAdmin(OrgScopedAdmin):
    org_path = "endpoint__organization"
    list_display = [
        "__str__",
        "endpoint",
        "endpoint_state",
        "event_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "endpoint__organization"]
    search_fields = ["endpoint__url"]
    list_select_related = ["endpoint"]
    ordering = ["-id"]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="endpoint state")
    def endpoint_state(self, obj):
        return endpoint_state(obj.endpoint)

    def has_change_permission(self, request, obj=None):
        return obj is None  # the changelist and its retry action; a delivery is not edited

    @admin.action(description="Retry selected failed deliveries now", permissions=["change"])
    def retry(self, request, queryset):
        retried = sum(services.delivery_retry(delivery) for delivery in queryset)
        self.message_user(request, f"{retried} failed deliveries will be attempted again.", messages.SUCCESS)
