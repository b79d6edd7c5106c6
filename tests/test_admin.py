"""The Django admin writes threads only through the services."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from threads.keys import hash_api_key
from threads.models import ApiKey, Event, Thread
from threads.services import message_add, thread_create, thread_delete

from .conftest import ACTOR

pytestmark = pytest.mark.django_db


def change_url(thread) -> str:
    return f"/admin/threads/thread/{thread.pk}/change/"


def form_data(thread, **overrides) -> dict:
    """The change form as the browser would post it, unchanged unless overridden."""
    data = {
        "title": thread.title,
        "tags": ", ".join(thread.tags),
        "project_id": thread.project_id or "",
        "assistant_id": thread.assistant_id or "",
        "user_id": thread.user_id or "",
        "metadata": json.dumps(thread.metadata),
        "variables": json.dumps(thread.variables),
        "loaded_version": thread.version,
        "_save": "Save",
    }
    for flag in ("is_archived", "is_active", "visible_in_ui", "is_pinned"):
        if getattr(thread, flag):
            data[flag] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_changelist_filters_and_searches(admin_client, thread, org, other_org):
    thread_create(org=other_org, actor=ACTOR, data={"title": "Elsewhere", "isArchived": True})

    everything = admin_client.get("/admin/threads/thread/")
    archived = admin_client.get("/admin/threads/thread/", {"is_archived__exact": "1"})
    found = admin_client.get("/admin/threads/thread/", {"q": "hell"})
    by_id = admin_client.get("/admin/threads/thread/", {"q": str(thread.pk)})

    assert everything.status_code == 200
    assert "Hello" in everything.text and "Elsewhere" in everything.text
    assert "Elsewhere" in archived.text and "Hello" not in archived.text
    assert "Hello" in found.text and "Elsewhere" not in found.text
    assert "Hello" in by_id.text and "Elsewhere" not in by_id.text


def test_the_change_form_shows_the_history(admin_client, thread):
    response = admin_client.get(change_url(thread))

    assert response.status_code == 200
    assert "History (newest first)" in response.text
    assert "metadata.a: (none) → 1" in response.text
    assert f'href="/ops/threads/{thread.pk}/?org=acme"' in response.text  # "View on site"


def test_saving_merges_metadata_through_the_service(admin_client, admin_user, thread):
    response = admin_client.post(
        change_url(thread), form_data(thread, title="Renamed", metadata=json.dumps({"b": "2"}), is_pinned="on")
    )

    assert response.status_code == 302
    thread.refresh_from_db()
    assert (thread.title, thread.metadata, thread.is_pinned) == ("Renamed", {"b": "2"}, True)
    assert thread.variables == {"v": "x"} and thread.version == 2
    event = Event.objects.get(thread_id=thread.pk, version=2)
    assert (event.actor_type, event.actor_name) == ("user", admin_user.username)
    assert event.changes["metadata"] == {"a": {"from": "1", "to": None}, "b": {"from": None, "to": "2"}}
    assert set(event.changes) == {"title", "metadata", "isPinned"}


def test_an_unchanged_form_writes_nothing(admin_client, thread):
    response = admin_client.post(change_url(thread), form_data(thread))

    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.version == 1
    assert Event.objects.filter(thread_id=thread.pk).count() == 1


def test_a_limit_error_is_a_form_error_and_nothing_is_saved(admin_client, thread):
    response = admin_client.post(
        change_url(thread), form_data(thread, title="Changed", metadata=json.dumps({"a": "1", "long": "x" * 600}))
    )

    assert response.status_code == 200
    assert "Metadata values cannot exceed 512 characters." in response.text
    assert response.context["adminform"].form.errors["metadata"]
    thread.refresh_from_db()
    assert (thread.title, thread.metadata, thread.version) == ("Hello", {"a": "1"}, 1)


def test_too_many_metadata_keys_is_a_form_error(admin_client, thread):
    many = {f"k{i}": "v" for i in range(17)}
    response = admin_client.post(change_url(thread), form_data(thread, metadata=json.dumps(many)))

    assert response.status_code == 200
    assert "Metadata cannot exceed 16 key-value pairs" in response.text
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1"}


def test_a_form_loaded_before_another_change_is_refused(admin_client, thread, api):
    api.patch(f"/api/v1/threads/{thread.pk}", {"metadata": {"other": "y"}})

    response = admin_client.post(change_url(thread), form_data(thread, title="Stale"))

    assert response.status_code == 200
    assert "Someone changed this thread" in response.text
    thread.refresh_from_db()
    assert (thread.title, thread.metadata) == ("Hello", {"a": "1", "other": "y"})


def test_adding_a_thread_goes_through_the_service(admin_client, org):
    response = admin_client.post(
        "/admin/threads/thread/add/",
        {
            "organization": org.pk,
            "title": "Made in admin",
            "tags": "X",
            "metadata": "{}",
            "variables": "{}",
            "is_active": "on",
            "visible_in_ui": "on",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    thread = Thread.objects.get(title="Made in admin")
    assert thread.tags == ["x"] and thread.organization == org
    assert Event.objects.get(thread_id=thread.pk).action == "created"


def test_tags_are_edited_as_comma_separated_text(admin_client, thread):
    page = admin_client.get(change_url(thread))
    assert 'name="tags" value="one"' in page.text  # the stored ["one"], as the operator page shows it

    response = admin_client.post(change_url(thread), form_data(thread, tags=" Billing, VIP ,billing,, "))

    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.tags == ["billing", "vip"] and thread.version == 2
    assert Event.objects.filter(thread_id=thread.pk).order_by("-id").first().changes == {
        "tags": {"from": ["one"], "to": ["billing", "vip"]}
    }


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("ok, " + "x" * 65, "Each tag must be 1 to 64 characters."),
        (", ".join(f"t{i}" for i in range(33)), "A thread cannot have more than 32 tags."),
    ],
)
def test_a_tag_the_rules_refuse_is_the_same_error_as_on_the_operator_page(admin_client, thread, tags, message):
    from .test_ops import edit_data

    admin = admin_client.post(change_url(thread), form_data(thread, tags=tags))
    ops = admin_client.post(f"/ops/threads/{thread.pk}/", edit_data(thread, tags=tags))

    assert admin.status_code == 200 and ops.status_code == 400
    assert admin.context["adminform"].form.errors["tags"] == [message]
    assert ops.context["form"].errors["tags"] == [message]
    thread.refresh_from_db()
    assert thread.tags == ["one"] and thread.version == 1


def test_an_unrelated_save_keeps_a_tag_that_holds_a_comma(admin_client, org):
    thread = thread_create(org=org, actor=ACTOR, data={"title": "t", "tags": ["a,b", "c"]})

    admin_client.post(change_url(thread), form_data(thread, title="renamed"))

    thread.refresh_from_db()
    assert (thread.title, thread.tags) == ("renamed", ["a,b", "c"])


def test_deleting_a_thread_keeps_its_history_readable(admin_client, thread):
    response = admin_client.post(f"/admin/threads/thread/{thread.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Thread.objects.filter(pk=thread.pk).exists()
    events = admin_client.get("/admin/threads/event/", {"q": str(thread.pk)})
    assert events.status_code == 200
    assert events.text.count(str(thread.pk)) >= 2  # created and deleted
    assert Event.objects.filter(thread_id=thread.pk, action="deleted").exists()


@pytest.mark.parametrize(
    ("action", "field", "value"),
    [
        ("archive", "is_archived", True),
        ("unarchive", "is_archived", False),
        ("hide", "visible_in_ui", False),
        ("show", "visible_in_ui", True),
    ],
)
def test_bulk_actions_go_through_the_service(admin_client, org, other_org, action, field, value):
    start = {"archive": False, "unarchive": True, "hide": True, "show": False}[action]
    name = {"is_archived": "isArchived", "visible_in_ui": "visibleInUi"}[field]
    threads = [thread_create(org=o, actor=ACTOR, data={name: start}) for o in (org, org, other_org)]

    response = admin_client.post(
        "/admin/threads/thread/", {"action": action, "_selected_action": [str(t.pk) for t in threads]}, follow=True
    )

    assert "3 thread(s)" in response.text
    for thread in threads:
        thread.refresh_from_db()
        assert getattr(thread, field) is value and thread.version == 2
        assert Event.objects.filter(thread_id=thread.pk, version=2, actor_type="user").exists()


def test_a_new_api_key_is_shown_once(admin_client, org):
    response = admin_client.post(
        "/admin/threads/apikey/add/",
        {"organization": org.pk, "name": "ci", "scope": "read", "_save": "Save"},
        follow=True,
    )

    key = ApiKey.objects.get(name="ci")
    message = next(str(m) for m in response.context["messages"])
    raw = message.split("The new API key is ")[1].split()[0]
    assert raw.startswith("tk_") and hash_api_key(raw) == key.key_hash and key.scope == "read"
    assert raw[:10] == key.prefix
    again = admin_client.get(f"/admin/threads/apikey/{key.pk}/change/")
    assert raw not in again.text and key.key_hash not in again.text and key.prefix in again.text


def test_the_revoke_action_revokes(admin_client, org, write_key):
    key = ApiKey.objects.get(key_hash=hash_api_key(write_key))

    admin_client.post("/admin/threads/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.is_revoked
    refused = admin_client.get("/api/v1/threads", HTTP_AUTHORIZATION=f"Bearer {write_key}")
    assert refused.status_code == 401


def test_events_are_read_only(admin_client, thread):
    event = Event.objects.get(thread_id=thread.pk)

    assert admin_client.get("/admin/threads/event/").status_code == 200
    assert admin_client.get(f"/admin/threads/event/{event.pk}/change/").status_code == 200
    assert admin_client.get("/admin/threads/event/add/").status_code == 403
    deleting = admin_client.post(f"/admin/threads/event/{event.pk}/delete/", {"post": "yes"})
    assert deleting.status_code == 403
    assert Event.objects.filter(pk=event.pk).exists()


def test_organizations_and_memberships_are_listed(admin_client, member):
    assert "acme" in admin_client.get("/admin/threads/organization/").text
    assert "mia" in admin_client.get("/admin/threads/membership/").text


def test_staff_see_only_their_organization(client, org, other_org, member, thread):
    from django.contrib.auth.models import Permission

    thread_delete(org=org, thread_id=thread.pk, actor=ACTOR)
    theirs = thread_create(org=other_org, actor=ACTOR, data={"title": "Theirs"})
    member.is_staff = True
    member.save()
    views = Permission.objects.filter(codename__in=["view_thread", "view_event"])
    member.user_permissions.add(*views)
    client.force_login(member)

    threads = client.get("/admin/threads/thread/")
    events = client.get("/admin/threads/event/")

    assert threads.status_code == 200 and "Theirs" not in threads.text
    assert str(thread.pk) in events.text  # a deleted thread's history stays readable
    assert str(theirs.pk) not in events.text


def changelist_queries(client, url, params=None):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return response, len(queries)


@pytest.mark.parametrize("params", [{}, {"q": "t1"}, {"project_id": "p1"}, {"o": "-10"}, {"p": "2"}])
def test_a_changelist_costs_the_same_queries_at_any_size(admin_client, org, params):
    Thread.objects.bulk_create([Thread(organization=org, title=f"t{i}", project_id="p1") for i in range(150)])
    _, small = changelist_queries(admin_client, "/admin/threads/thread/", params)
    Thread.objects.bulk_create([Thread(organization=org, title=f"t{i}", project_id="p1") for i in range(1000)])
    response, large = changelist_queries(admin_client, "/admin/threads/thread/", params)

    assert small <= large <= small + 2  # + the planner's estimate, and a count up to 10,000 when it is low
    assert "SELECT DISTINCT" not in str(response.context["cl"].queryset.query)
    assert len(response.context["cl"].result_list) == 50


def test_the_project_filter_is_a_text_box_and_matches_exactly(admin_client, org):
    thread_create(org=org, actor=ACTOR, data={"title": "In p1", "projectId": "p1"})
    thread_create(org=org, actor=ACTOR, data={"title": "In p10", "projectId": "p10"})

    response = admin_client.get("/admin/threads/thread/", {"project_id": "p1"})

    assert 'name="project_id" value="p1"' in response.text
    assert "In p1<" in response.text and "In p10" not in response.text


def test_search_matches_title_words_or_exact_ids(admin_client, org):
    thread_create(org=org, actor=ACTOR, data={"title": "Refund request", "userId": "u-7"})
    thread_create(org=org, actor=ACTOR, data={"title": "Other", "projectId": "proj-7"})

    assert "Refund request" in admin_client.get("/admin/threads/thread/", {"q": "refund"}).text
    by_user = admin_client.get("/admin/threads/thread/", {"q": "u-7"}).text
    assert "Refund request" in by_user and "Other<" not in by_user
    assert "Other" in admin_client.get("/admin/threads/thread/", {"q": "proj-7"}).text
    assert "Other<" not in admin_client.get("/admin/threads/thread/", {"q": "proj"}).text


def test_filtered_by_creation_date_the_newest_created_come_first(admin_client, org):
    old, new = (thread_create(org=org, actor=ACTOR, data={"title": t}) for t in ("old", "new"))
    Thread.objects.filter(pk=old.pk).update(updated_at=new.updated_at + timedelta(hours=1))

    since = (new.created_at - timedelta(days=1)).isoformat()
    response = admin_client.get("/admin/threads/thread/", {"created_at__gte": since})

    assert [t.title for t in response.context["cl"].result_list] == ["new", "old"]


def column(response, name: str) -> str:
    """The changelist's ``o`` index of a column (the action checkbox counts as one)."""
    return str(response.context["cl"].list_display.index(name))


def test_each_sortable_column_sorts_by_its_own_indexed_field_without_a_join(admin_client, org):
    b, c, a = (thread_create(org=org, actor=ACTOR, data={"title": t}) for t in ("b", "c", "a"))
    for thread, count in ((b, 3), (a, 1)):  # messages: c none, a one, b three; updated: c, b, a
        for n in range(count):
            message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": f"m{n}"})
    page = admin_client.get("/admin/threads/thread/")

    for name, field, expected in [
        ("thread", "title", ["a", "b", "c"]),
        ("message_total", "message_count", ["c", "a", "b"]),
        ("updated_at", "updated_at", ["c", "b", "a"]),
    ]:
        for sign, order in (("", expected), ("-", expected[::-1])):
            response = admin_client.get("/admin/threads/thread/", {"o": sign + column(page, name)})
            cl = response.context["cl"]
            assert [t.title for t in cl.result_list] == order, (name, sign)
            assert cl.get_ordering(response.wsgi_request, cl.root_queryset)[:2] == ["organization", sign + field]
            assert "threads_message" not in str(cl.queryset.query), name  # along its index, no message joined


def test_only_indexed_columns_sort(admin_client, org):
    thread_create(org=org, actor=ACTOR, data={"title": "b", "projectId": "z"})
    thread_create(org=org, actor=ACTOR, data={"title": "a", "projectId": "y"})

    page = admin_client.get("/admin/threads/thread/")
    by_title = admin_client.get("/admin/threads/thread/", {"o": column(page, "thread")}).context["cl"]
    by_project = admin_client.get("/admin/threads/thread/", {"o": column(page, "project")})
    cl = by_project.context["cl"]

    assert [t.title for t in by_title.result_list] == ["a", "b"]
    assert cl.get_ordering(by_project.wsgi_request, cl.root_queryset) == ["organization", "-updated_at", "-id"]
