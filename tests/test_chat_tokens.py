"""Chat tokens: short-lived JWTs bound to one thread, for that thread's metadata, variables and
messages only."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from threads.api.tokens import ChatToken
from threads.models import Event
from threads.services import thread_create

from .conftest import ACTOR, Api, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(thread):
    return Api(str(ChatToken.for_thread(thread)))


def code(response, status):
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


def test_issuing_a_token_returns_token_thread_and_expiry(api, thread):
    response = api.post(url(thread, "/chat-token"), {"ttlSeconds": 120})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "threadId", "expiresAt"} and body["threadId"] == str(thread.pk)
    token = ChatToken(body["token"])
    assert token["token_type"] == "chat" and token["thread_id"] == str(thread.pk)
    assert token["org_id"] == str(thread.organization_id)
    assert 115 <= token["exp"] - token["iat"] <= 120


def test_the_default_ttl_is_an_hour(api, thread):
    token = ChatToken(api.post(url(thread, "/chat-token")).json()["token"])
    assert token["exp"] - token["iat"] == 3600


@pytest.mark.parametrize("ttl", [59, 86_401, "600", 1.5, True, None])
def test_a_ttl_out_of_range_is_400(api, thread, ttl):
    assert code(api.post(url(thread, "/chat-token"), {"ttlSeconds": ttl}), 400) == "invalid_parameters"


def test_a_chat_token_reads_its_thread_and_patches_metadata_and_variables(chat, thread):
    assert chat.get(url(thread)).status_code == 200
    response = chat.patch(url(thread), {"metadata": {"page": "pricing"}, "variables": {"name": "Ann"}})
    assert response.status_code == 200
    assert response.json()["metadata"] == {"a": "1", "page": "pricing"}
    event = Event.objects.filter(thread_id=thread.pk).latest("version")
    assert (event.actor_type, event.actor_id) == ("chat_token", str(thread.pk))


def test_a_chat_token_lists_and_adds_messages(chat, thread):
    assert chat.post(url(thread, "/messages"), {"role": "user", "content": "hi"}).status_code == 201
    assert len(chat.get(url(thread, "/messages")).json()["results"]) == 1


@pytest.mark.parametrize(
    "body", [{"title": "x"}, {"tags": ["x"]}, {"isArchived": True}, {"metadata": {"a": "2"}, "isPinned": True}]
)
def test_a_chat_token_cannot_patch_other_fields(chat, thread, body):
    assert code(chat.patch(url(thread), body), 403) == "permission_denied"
    thread.refresh_from_db()
    assert thread.version == 1


def test_a_chat_token_cannot_do_anything_else(chat, thread):
    assert code(chat.delete(url(thread)), 403) == "permission_denied"
    assert code(chat.get(url(thread, "/history")), 403) == "permission_denied"
    assert code(chat.post(url(thread, "/chat-token"), {}), 403) == "permission_denied"
    assert code(chat.get("/api/v1/threads"), 403) == "permission_denied"
    assert code(chat.post("/api/v1/threads", {}), 403) == "permission_denied"
    assert Event.objects.filter(thread_id=thread.pk).count() == 1


def test_a_chat_token_for_another_thread_is_refused(chat, org):
    other = thread_create(org=org, data={}, actor=ACTOR)
    assert code(chat.get(url(other)), 403) == "permission_denied"
    assert code(chat.patch(url(other), {"metadata": {"x": "1"}}), 403) == "permission_denied"
    assert code(chat.post(url(other, "/messages"), {"role": "user", "content": "x"}), 403) == "permission_denied"


def test_an_expired_chat_token_is_401(thread):
    token = ChatToken.for_thread(thread)
    token.set_exp(lifetime=timedelta(seconds=-1))
    assert code(Api(str(token)).get(url(thread)), 401) == "invalid_token"


def test_a_tampered_chat_token_is_401(thread, org):
    other = thread_create(org=org, data={}, actor=ACTOR)
    header, payload, signature = str(ChatToken.for_thread(thread)).split(".")
    _, other_payload, _ = str(ChatToken.for_thread(other)).split(".")
    assert code(Api(f"{header}.{other_payload}.{signature}").get(url(other)), 401) == "invalid_token"
    assert code(Api(f"{header}.{payload}.{signature[:-4]}AAAA").get(url(thread)), 401) == "invalid_token"


def test_a_chat_token_is_not_a_user_token_and_the_reverse(member, thread):
    """A chat token claims no user; a user access token claims no thread."""
    chat_payload = ChatToken.for_thread(thread).payload
    with pytest.raises(TokenError):
        AccessToken(str(ChatToken.for_thread(thread)))
    with pytest.raises(TokenError):
        ChatToken(str(AccessToken.for_user(member)))
    assert "user_id" not in chat_payload


def test_the_command_prints_a_token_alone_on_the_last_line(thread, capsys):
    call_command("issue_chat_token", str(thread.pk), "--ttl", "300")
    token = ChatToken(capsys.readouterr().out.strip().splitlines()[-1])
    assert token["thread_id"] == str(thread.pk) and token["exp"] - token["iat"] == 300
