"""The webhook endpoints' routes: CRUD with the secret shown once, URL safety, tenancy, scopes."""

from __future__ import annotations

import base64

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from threads.api.tokens import ChatToken
from threads.webhooks.models import Delivery, WebhookEndpoint
from threads.webhooks.services import endpoint_create

from .conftest import Api, make_user

pytestmark = pytest.mark.django_db

HOOKS = "/api/v1/webhooks"
PUBLIC = "https://93.184.215.14/hooks"  # a literal public address: no DNS needed


def hook_url(endpoint, suffix: str = "") -> str:
    return f"{HOOKS}/{getattr(endpoint, 'pk', endpoint)}{suffix}"


@pytest.fixture
def endpoint(org):
    return endpoint_create(org=org, data={"url": PUBLIC, "description": "CRM"})


def test_create_shows_the_secret_once(api):
    response = api.post(
        HOOKS, {"url": PUBLIC, "actions": ["updated", "created", "updated"], "description": "CRM mirror"}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == hook_url(body["id"])
    assert set(body) == {
        "id",
        "object",
        "url",
        "actions",
        "description",
        "isActive",
        "disabledReason",
        "failingSince",
        "nextProbeAt",
        "createdAt",
        "secret",
    }
    assert (body["disabledReason"], body["failingSince"], body["nextProbeAt"]) == (None, None, None)
    assert body["object"] == "webhook_endpoint"
    assert body["actions"] == ["updated", "created"]
    assert body["isActive"] is True
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert stored.secret == body["secret"] and stored.description == "CRM mirror"

    for answer in (
        api.get(hook_url(body["id"])).json(),
        api.get(HOOKS).json()["results"][0],
        api.patch(hook_url(body["id"]), {"description": "x"}).json(),
    ):
        assert "secret" not in answer
        assert answer["id"] == body["id"]


def test_list_is_paginated_newest_first(api, org):
    made = [endpoint_create(org=org, data={"url": f"{PUBLIC}/{n}"}) for n in range(3)]
    page = api.get(HOOKS, {"limit": 2}).json()
    assert [row["id"] for row in page["results"]] == [str(made[2].pk), str(made[1].pk)]
    rest = api.get(page["next"]).json()
    assert [row["id"] for row in rest["results"]] == [str(made[0].pk)] and rest["next"] is None


def test_patch_changes_only_the_fields_named(api, endpoint):
    response = api.patch(hook_url(endpoint), {"actions": ["deleted"], "isActive": False})
    assert response.status_code == 200, response.content
    assert response.json()["actions"] == ["deleted"] and response.json()["isActive"] is False
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.description, endpoint.actions, endpoint.is_active) == (
        PUBLIC,
        "CRM",
        ["deleted"],
        False,
    )
    assert api.patch(hook_url(endpoint), {"actions": None, "description": None}).json()["actions"] == []


@pytest.mark.parametrize(
    "body, param",
    [
        ({"secret": "whsec_x"}, "secret"),
        ({"id": "x"}, "id"),
        ({"actions": ["renamed"]}, "actions"),
        ({"actions": "updated"}, "actions"),
        ({"isActive": "yes"}, "isActive"),
        ({"description": 3}, "description"),
        ({"description": "x" * 501}, "description"),
        ({"url": 5}, "url"),
        ([], None),
    ],
)
def test_bad_fields_are_refused_and_nothing_changes(api, endpoint, body, param):
    response = api.patch(hook_url(endpoint), body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_parameters"
    assert response.json()["error"].get("param") == param
    before = WebhookEndpoint.objects.filter(pk=endpoint.pk).values().get()
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).values().get() == before


def test_create_needs_a_url(api):
    response = api.post(HOOKS, {"description": "no url"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "url"
    assert not WebhookEndpoint.objects.exists()


REFUSED = {
    "not http": "ftp://93.184.215.14/x",
    "no host": "http:///path",
    "relative": "/hooks",
    "loopback": "http://127.0.0.1:8000/x",
    "loopback by name": "http://localhost/x",
    "loopback in decimal": "http://2130706433/x",
    "loopback IPv6": "http://[::1]/x",
    "IPv4-mapped loopback": "http://[::ffff:127.0.0.1]/x",
    "private 10/8": "http://10.0.0.5/x",
    "private 172.16/12": "https://172.16.3.4/x",
    "private 192.168/16": "http://192.168.1.1/x",
    "unique local IPv6": "http://[fd00::1]/x",
    "shared address space": "http://100.64.0.1/x",
    "link-local (cloud metadata)": "http://169.254.169.254/latest/meta-data",
    "link-local IPv6": "http://[fe80::1]/x",
    "multicast": "http://224.0.0.1/x",
    "multicast IPv6": "http://[ff02::1]/x",
    "reserved": "http://240.0.0.1/x",
    "unspecified": "http://0.0.0.0/x",
    "userinfo before a private host": "http://93.184.215.14@10.0.0.1/x",
    "bad port": "http://93.184.215.14:99999/x",
    "whitespace": "http://93.184.215.14/a b",
}


@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
def test_unsafe_urls_are_refused_at_creation_and_on_patch(api, endpoint, url):
    response = api.post(HOOKS, {"url": url})
    assert response.status_code == 422, response.content
    assert response.json()["error"] | {"message": ""} == {
        "type": "validation_error",
        "code": "webhook_url_invalid",
        "message": "",
        "param": "url",
    }
    assert WebhookEndpoint.objects.count() == 1
    assert api.patch(hook_url(endpoint), {"url": url}).status_code == 422
    endpoint.refresh_from_db()
    assert endpoint.url == PUBLIC


def test_allowed_networks_exempt_private_receivers(api, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8", "127.0.0.1/32"]
    assert api.post(HOOKS, {"url": "http://10.1.2.3/x"}).status_code == 201
    assert api.post(HOOKS, {"url": "http://localhost:9000/x"}).status_code == 201
    assert api.post(HOOKS, {"url": "http://192.168.1.1/x"}).status_code == 422


def test_delete(api, endpoint):
    Delivery.objects.create(endpoint=endpoint, event=None)
    assert api.delete(hook_url(endpoint)).status_code == 204
    assert not WebhookEndpoint.objects.exists() and not Delivery.objects.exists()
    assert api.get(hook_url(endpoint)).status_code == 404


def test_rotate_secret_shows_the_new_one_and_keeps_the_old_one_for_a_day(api, endpoint):
    old = endpoint.secret
    response = api.post(hook_url(endpoint, "/rotate-secret"))
    assert response.status_code == 200, response.content
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.previous_secret) == (new, old)
    now = endpoint.updated_at
    from datetime import timedelta

    assert endpoint.secrets(now) == [new, old]
    assert endpoint.secrets(now + timedelta(hours=24, seconds=1)) == [new]


def test_deliveries_are_listed_newest_first(api, endpoint):
    first = Delivery.objects.create(
        endpoint=endpoint,
        event=None,
        status="failed",
        attempts=8,
        last_status_code=500,
        last_error="The receiver answered 500.",
    )
    second = Delivery.objects.create(endpoint=endpoint, event=None)
    response = api.get(hook_url(endpoint, "/deliveries"))
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [f"msg_{second.pk}", f"msg_{first.pk}"]
    assert rows[1] == {
        "id": f"msg_{first.pk}",
        "eventId": None,
        "status": "failed",
        "attempts": 8,
        "lastStatusCode": 500,
        "lastError": "The receiver answered 500.",
        "nextAttemptAt": None,
        "deliveredAt": None,
        "createdAt": rows[1]["createdAt"],
    }


ROUTES = [("get", ""), ("patch", ""), ("delete", ""), ("post", "/rotate-secret"), ("get", "/deliveries")]


@pytest.mark.parametrize("method, suffix", ROUTES)
def test_another_organizations_endpoint_is_404_and_unchanged(outsider, other_org, endpoint, method, suffix):
    before = WebhookEndpoint.objects.filter(pk=endpoint.pk).values().get()
    args = ({"url": "https://93.184.215.15/stolen"},) if method == "patch" else ()
    other_member = Api(str(AccessToken.for_user(make_user(other_org, "eve"))))
    for caller in (outsider, other_member):
        response = getattr(caller, method)(hook_url(endpoint, suffix), *args)
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).values().get() == before
    assert outsider.get(HOOKS).json()["results"] == []
    assert Api("").get(hook_url("not-a-uuid")).status_code == 401


def test_chat_tokens_are_refused_every_webhook_route(thread, endpoint):
    chat = Api(str(ChatToken.for_thread(thread)))
    assert chat.get(HOOKS).status_code == 403
    assert chat.post(HOOKS, {"url": PUBLIC}).status_code == 403
    for method, suffix in ROUTES:
        args = ({"description": "x"},) if method == "patch" else ()
        assert getattr(chat, method)(hook_url(endpoint, suffix), *args).status_code == 403
    assert WebhookEndpoint.objects.count() == 1


def test_readers_may_only_read(reader, viewer_api, member_api, endpoint):
    for caller in (reader, viewer_api):
        assert caller.get(HOOKS).status_code == 200
        assert caller.get(hook_url(endpoint, "/deliveries")).status_code == 200
        assert caller.post(HOOKS, {"url": PUBLIC}).status_code == 403
        assert caller.post(hook_url(endpoint, "/rotate-secret")).status_code == 403
        assert caller.delete(hook_url(endpoint)).status_code == 403
    assert member_api.post(HOOKS, {"url": PUBLIC}).status_code == 201
