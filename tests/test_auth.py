"""Authentication (API keys, user JWTs) and the read/write split."""

import base64
import json
from datetime import timedelta

import pytest
from rest_framework_simplejwt.tokens import AccessToken

from threads.keys import api_key_create, api_key_revoke, hash_api_key
from threads.models import ApiKey

from .conftest import Api, make_user, url

pytestmark = pytest.mark.django_db


def error_code(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_no_credentials_is_401_authentication_required(thread):
    response = Api().get(url(thread))
    assert error_code(response, 401) == "authentication_required"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["tk_unknown", "garbage", "a.b.c"])
def test_an_invalid_key_or_token_is_401_invalid_token(thread, token):
    assert error_code(Api(token).get(url(thread)), 401) == "invalid_token"


def test_a_revoked_key_is_401(org, thread):
    key, raw = api_key_create(org=org, name="old")
    api_key_revoke(key)
    assert error_code(Api(raw).get(url(thread)), 401) == "invalid_token"


def test_keys_are_stored_only_as_a_hash_and_record_their_last_use(org, thread):
    key, raw = api_key_create(org=org, name="k")
    assert raw.startswith("tk_") and raw not in key.key_hash and key.key_hash == hash_api_key(raw)
    assert Api(raw).get(url(thread)).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_member_jwt_reads_and_writes(member_api, thread):
    assert member_api.get(url(thread)).status_code == 200
    assert member_api.patch(url(thread), {"title": "by member"}).status_code == 200


def test_an_expired_jwt_is_401(member, thread):
    token = AccessToken.for_user(member)
    token.set_exp(lifetime=timedelta(seconds=-5))
    assert error_code(Api(str(token)).get(url(thread)), 401) == "invalid_token"


def test_a_jwt_signed_with_another_key_is_401(member, thread):
    token = AccessToken.for_user(member)
    header, payload, signature = str(token).split(".")
    forged = f"{header}.{b64({**token.payload, 'user_id': str(member.pk)})}.{signature}"
    assert error_code(Api(forged).get(url(thread)), 401) == "invalid_token"


def test_an_unsigned_alg_none_jwt_is_401(member, thread):
    payload = dict(AccessToken.for_user(member).payload)
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
    assert error_code(Api(unsigned).get(url(thread)), 401) == "invalid_token"


def test_a_refresh_token_is_not_an_access_token(member, thread, client):
    response = client.post(
        "/api/v1/auth/token", {"username": "mia", "password": "pw-123456"}, content_type="application/json"
    )
    assert error_code(Api(response.json()["refresh"]).get(url(thread)), 401) == "invalid_token"


def test_token_and_refresh_endpoints(member, thread, client):
    response = client.post(
        "/api/v1/auth/token", {"username": "mia", "password": "pw-123456"}, content_type="application/json"
    )
    assert response.status_code == 200
    tokens = response.json()
    assert Api(tokens["access"]).get(url(thread)).status_code == 200
    refreshed = client.post(
        "/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, content_type="application/json"
    )
    assert refreshed.status_code == 200
    assert Api(refreshed.json()["access"]).get(url(thread)).status_code == 200


def test_wrong_credentials_at_the_token_endpoint_are_401(member, client):
    response = client.post(
        "/api/v1/auth/token", {"username": "mia", "password": "wrong"}, content_type="application/json"
    )
    assert error_code(response, 401) == "invalid_token"
    response = client.post("/api/v1/auth/token/refresh", {"refresh": "nope"}, content_type="application/json")
    assert error_code(response, 401) == "invalid_token"


def test_a_read_key_reads_but_every_write_is_403(reader, thread):
    assert reader.get(url(thread)).status_code == 200
    assert reader.get("/api/v1/threads").status_code == 200
    for response in [
        reader.patch(url(thread), {"title": "no"}),
        reader.post("/api/v1/threads", {}),
        reader.delete(url(thread)),
        reader.post(url(thread, "/messages"), {"role": "user", "content": "x"}),
        reader.post(url(thread, "/chat-token"), {}),
    ]:
        assert error_code(response, 403) == "permission_denied"
        assert response.json()["error"]["type"] == "permission_error"
    thread.refresh_from_db()
    assert thread.title == "Hello" and thread.version == 1


def test_a_viewer_reads_but_every_write_is_403(viewer_api, thread):
    assert viewer_api.get(url(thread)).status_code == 200
    assert error_code(viewer_api.patch(url(thread), {"title": "no"}), 403) == "permission_denied"
    assert error_code(viewer_api.delete(url(thread)), 403) == "permission_denied"
    thread.refresh_from_db()
    assert thread.version == 1


def test_a_user_without_an_organization_is_403(db, thread):
    from django.contrib.auth import get_user_model

    loner = get_user_model().objects.create_user(username="loner", password="x")
    assert error_code(Api(str(AccessToken.for_user(loner))).get("/api/v1/threads"), 403) == "permission_denied"


def test_an_inactive_user_is_401(org, thread):
    user = make_user(org, "gone")
    token = str(AccessToken.for_user(user))
    user.is_active = False
    user.save()
    assert error_code(Api(token).get(url(thread)), 401) == "invalid_token"


def test_create_api_key_scope_is_recorded(org):
    key, _ = api_key_create(org=org, name="r", scope="read")
    assert ApiKey.objects.get(pk=key.pk).scope == "read"


def test_a_rotated_signing_key_is_accepted_only_while_listed_as_previous(member, thread, settings):
    from rest_framework_simplejwt.backends import TokenBackend

    payload = dict(AccessToken.for_user(member).payload)
    old = TokenBackend("HS256", "the-previous-signing-key-0123456789-abcdefghij").encode(payload)
    assert error_code(Api(old).get(url(thread)), 401) == "invalid_token"
    settings.JWT_PREVIOUS_SIGNING_KEYS = ["the-previous-signing-key-0123456789-abcdefghij"]
    assert Api(old).get(url(thread)).status_code == 200
