"""The admin of webhook endpoints: create (secret shown once), edit through the services, recent
deliveries, retry a failed delivery, send a test event."""

from __future__ import annotations

import threading

import pytest

from threads.webhooks import loop
from threads.webhooks.models import Delivery, WebhookEndpoint
from threads.webhooks.services import endpoint_create

from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

ADD = "/admin/webhooks/webhookendpoint/add/"
PUBLIC = "https://93.184.215.14/hooks"


def change_url(endpoint) -> str:
    return f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/"


def test_adding_an_endpoint_shows_its_secret_once(admin_client, org):
    response = admin_client.post(
        ADD,
        {"organization": org.pk, "url": PUBLIC, "actions": ["updated"], "description": "CRM", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.actions, endpoint.description, endpoint.is_active) == (
        PUBLIC,
        ["updated"],
        "CRM",
        True,
    )
    assert endpoint.secret in response.text and "shown only this once" in response.text
    assert endpoint.secret not in admin_client.get(change_url(endpoint)).text


def test_an_unsafe_url_is_a_form_error_and_saves_nothing(admin_client, org):
    response = admin_client.post(ADD, {"organization": org.pk, "url": "http://169.254.169.254/", "is_active": "on"})
    assert response.status_code == 200
    assert "non-public address" in response.text
    assert not WebhookEndpoint.objects.exists()


def test_the_change_form_edits_through_the_services_and_lists_recent_deliveries(admin_client, org):
    endpoint = endpoint_create(org=org, data={"url": PUBLIC})
    Delivery.objects.create(endpoint=endpoint, status="failed", attempts=8, last_status_code=502, last_error="boom")
    page = admin_client.get(change_url(endpoint))
    assert page.status_code == 200 and "boom" in page.text and "502" in page.text
    response = admin_client.post(
        change_url(endpoint), {"url": PUBLIC + "/v2", "actions": ["deleted"], "description": "", "_save": "Save"}
    )
    assert response.status_code == 302, response.content[:500]
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.actions, endpoint.is_active) == (PUBLIC + "/v2", ["deleted"], False)


def test_retry_makes_a_failed_delivery_due_again(admin_client, org):
    endpoint = endpoint_create(org=org, data={"url": PUBLIC})
    failed = Delivery.objects.create(endpoint=endpoint, status="failed", attempts=8)
    succeeded = Delivery.objects.create(endpoint=endpoint, status="succeeded", attempts=1)
    response = admin_client.post(
        "/admin/webhooks/delivery/", {"action": "retry", "_selected_action": [failed.pk, succeeded.pk]}, follow=True
    )
    assert "1 failed deliveries will be attempted again" in response.text
    failed.refresh_from_db()
    succeeded.refresh_from_db()
    assert (failed.status, failed.attempts, failed.next_attempt_at is not None) == ("pending", 8, True)
    assert succeeded.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_send_a_test_event(admin_client, org, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = Receiver()
    try:
        endpoint = endpoint_create(org=org, data={"url": receiver.url})
        receiver.secrets = [endpoint.secret]
        response = admin_client.post(
            "/admin/webhooks/webhookendpoint/",
            {"action": "send_test_event", "_selected_action": [endpoint.pk]},
            follow=True,
        )
        assert "queued" in response.text
        loop.run(threading.Event(), once=True)
    finally:
        receiver.close()
    assert receiver.unverified == []
    assert [r.body["type"] for r in receiver.received] == ["webhook.test"]
    assert receiver.received[0].body["data"]["endpointId"] == str(endpoint.pk)
    assert Delivery.objects.get().status == "succeeded"
