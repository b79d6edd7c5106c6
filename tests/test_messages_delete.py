"""Deleting a message: ``services.message_delete``, ``DELETE /api/v1/threads/{id}/messages/{messageId}``,
the operator thread page's button, and the ``message_deleted`` event in the history, the feed and
the webhooks."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import IntegrityError, transaction

from threads.errors import ThreadError
from threads.models import Event, Message, Thread
from threads.services import message_add, message_delete, thread_create
from threads.webhooks import loop
from threads.webhooks.services import endpoint_create

from .conftest import ACTOR, url
from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat(org):
    """A thread with three messages."""
    thread = thread_create(org=org, actor=ACTOR, data={"title": "chat"})
    for text in ("one", "two", "three"):
        message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": text}, actor=ACTOR)
    return Thread.objects.get(pk=thread.pk)


def second(thread) -> Message:
    return Message.objects.get(thread=thread, content="two")


def msg_url(thread, message_or_id) -> str:
    return url(thread, f"/messages/{getattr(message_or_id, 'pk', message_or_id)}")


# --- the service --------------------------------------------------------------------------


def test_it_deletes_the_message_counts_one_less_bumps_the_version_and_records_an_event(org, chat):
    target = second(chat)
    thread = message_delete(org=org, thread_id=chat.pk, message_id=target.pk, actor=ACTOR)

    assert not Message.objects.filter(pk=target.pk).exists()
    stored = Thread.objects.get(pk=chat.pk)
    assert (stored.message_count, stored.version) == (2, chat.version + 1) == (thread.message_count, thread.version)
    assert stored.last_activity_at == chat.last_activity_at and stored.updated_at > chat.updated_at
    event = Event.objects.filter(thread_id=chat.pk).latest("id")
    assert (event.action, event.version, event.actor_type) == ("message_deleted", stored.version, ACTOR.type)
    assert event.changes == {"messageCount": {"from": 3, "to": 2}, "messageId": {"from": str(target.pk), "to": None}}


def test_it_is_one_transaction_an_event_that_cannot_be_written_leaves_the_message(org, chat):
    # The next version's event already exists (the (thread, version) pair is unique): the
    # event's insert fails, and with it the whole delete.
    Event.objects.create(
        organization=org, thread_id=chat.pk, action="updated", version=chat.version + 1, actor_type=ACTOR.type
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        message_delete(org=org, thread_id=chat.pk, message_id=second(chat).pk, actor=ACTOR)

    stored = Thread.objects.get(pk=chat.pk)
    assert (stored.message_count, stored.version, Message.objects.filter(thread=chat).count()) == (3, chat.version, 3)


def test_if_match_is_checked_and_a_stale_version_deletes_nothing(org, chat):
    with pytest.raises(ThreadError) as error:
        message_delete(org=org, thread_id=chat.pk, message_id=second(chat).pk, actor=ACTOR, if_match=chat.version - 1)
    assert error.value.code == "version_mismatch"
    assert Message.objects.filter(thread=chat).count() == 3

    message_delete(org=org, thread_id=chat.pk, message_id=second(chat).pk, actor=ACTOR, if_match=chat.version)
    assert Message.objects.filter(thread=chat).count() == 2


def test_another_threads_or_organizations_message_is_not_found(org, other_org, chat):
    mine = thread_create(org=org, actor=ACTOR, data={})
    with pytest.raises(ThreadError) as error:
        message_delete(org=org, thread_id=mine.pk, message_id=second(chat).pk, actor=ACTOR)
    assert error.value.code == "not_found"
    with pytest.raises(ThreadError) as error:
        message_delete(org=other_org, thread_id=chat.pk, message_id=second(chat).pk, actor=ACTOR)
    assert error.value.code == "thread_not_found"
    for bad in ("not-a-uuid", uuid.uuid4()):
        with pytest.raises(ThreadError):
            message_delete(org=org, thread_id=chat.pk, message_id=bad, actor=ACTOR)
    assert Message.objects.count() == 3 and Thread.objects.get(pk=chat.pk).version == chat.version


# --- the canonical API --------------------------------------------------------------------


def test_the_route_answers_204_with_the_new_version(api, chat):
    response = api.delete(msg_url(chat, second(chat)), if_match=f'"{chat.version}"')

    assert (response.status_code, response.content, response["ETag"]) == (204, b"", f'"{chat.version + 1}"')
    stored = api.get(url(chat)).json()
    assert (stored["messageCount"], stored["version"]) == (2, chat.version + 1)
    assert [m["content"] for m in api.get(url(chat, "/messages")).json()["results"]] == ["one", "three"]
    history = api.get(url(chat, "/history")).json()["results"][0]
    assert history["action"] == "message_deleted" and history["actor"]["type"] == "api_key"


def test_the_route_refuses_a_stale_if_match_an_unknown_message_and_other_callers(api, reader, outsider, chat):
    assert api.delete(msg_url(chat, second(chat)), if_match='"1"').json()["error"]["code"] == "version_mismatch"
    assert api.delete(msg_url(chat, uuid.uuid4())).json()["error"]["code"] == "not_found"
    assert api.delete(msg_url(chat, "nope")).status_code == 404
    assert outsider.delete(msg_url(chat, second(chat))).json()["error"]["code"] == "thread_not_found"
    assert reader.delete(msg_url(chat, second(chat))).status_code == 403
    assert Message.objects.filter(thread=chat).count() == 3


# --- the feed and the webhooks --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_feed_and_a_webhook_that_asks_for_it_carry_the_event(api, org, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = Receiver()
    try:
        created = api.post("/api/v1/webhooks", {"url": receiver.url, "actions": ["message_deleted"]})
        assert created.status_code == 201 and created.json()["actions"] == ["message_deleted"]
        receiver.secrets = [created.json()["secret"]]
        thread = thread_create(org=org, actor=ACTOR, data={}, messages=[{"role": "user", "content": "x"}])
        message = Message.objects.get(thread=thread)
        message_delete(org=org, thread_id=thread.pk, message_id=message.pk, actor=ACTOR)

        feed = api.get("/api/v1/events", {"action": "message_deleted"}).json()["results"]
        assert [(e["threadId"], e["action"], e["changes"]["messageId"]["from"]) for e in feed] == [
            (str(thread.pk), "message_deleted", str(message.pk))
        ]
        loop.run(threading.Event(), once=True)
        assert [r.body["type"] for r in receiver.received] == ["thread.message_deleted"]
        assert receiver.received[0].body["data"] == feed[0]
    finally:
        receiver.close()


def test_webhook_actions_come_from_the_models_choices(org):
    endpoint = endpoint_create(org=org, data={"url": "https://93.184.215.14/h", "actions": ["message_deleted"]})
    assert endpoint.actions == ["message_deleted"]
    assert "message_deleted" in Event.Action.values


# --- the operator page ----------------------------------------------------------------------


def test_the_thread_page_deletes_a_message_and_says_so(client, member, chat):
    client.force_login(member)
    page = client.get(f"/ops/threads/{chat.pk}/")
    action = f"/ops/threads/{chat.pk}/messages/{second(chat).pk}/delete/"
    assert action.encode() in page.content and b"Delete message" in page.content

    response = client.post(action, follow=True)

    assert response.redirect_chain[-1][0] == f"/ops/threads/{chat.pk}/"
    assert b"Message deleted" in response.content and b"<pre>two</pre>" not in response.content
    assert Thread.objects.get(pk=chat.pk).message_count == 2
    assert Event.objects.filter(thread_id=chat.pk).latest("id").actor_type == "user"
    again = client.post(action, follow=True)
    assert b"already deleted" in again.content and Thread.objects.get(pk=chat.pk).message_count == 2


def test_a_viewer_sees_no_delete_button_and_cannot_post_one(client, viewer, chat):
    client.force_login(viewer)
    assert b"Delete message" not in client.get(f"/ops/threads/{chat.pk}/").content
    assert client.post(f"/ops/threads/{chat.pk}/messages/{second(chat).pk}/delete/").status_code == 403
    assert client.get(f"/ops/threads/{chat.pk}/messages/{second(chat).pk}/delete/").status_code == 405
    assert Thread.objects.get(pk=chat.pk).message_count == 3


def test_another_organizations_thread_is_a_404_on_the_page(client, other_org, chat):
    from .conftest import make_user

    client.force_login(make_user(other_org, "otto"))
    assert client.post(f"/ops/threads/{chat.pk}/messages/{second(chat).pk}/delete/").status_code == 404
    assert Thread.objects.get(pk=chat.pk).message_count == 3
