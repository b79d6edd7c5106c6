"""The operator pages at /ops/threads/: list, filters, bulk actions and the thread page."""

from __future__ import annotations

import base64
import html
import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from threads.filters import ORDERINGS
from threads.models import Event, Thread
from threads.ops import views
from threads.services import message_add, thread_create, thread_update

from .conftest import ACTOR, make_user

pytestmark = pytest.mark.django_db
LIST = "/ops/threads/"


def page(thread) -> str:
    return f"/ops/threads/{thread.pk}/"


def make(org, **data) -> Thread:
    return thread_create(org=org, actor=ACTOR, data=data)


@pytest.fixture
def mia(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def vic(viewer):
    client = Client()
    client.force_login(viewer)
    return client


def titles(response) -> list[str]:
    return [t.title for t in response.context["page"]]


def edit_data(thread, **overrides) -> dict:
    """The thread page's form as the browser posts it, unchanged unless overridden."""
    data = {
        "version": thread.version,
        "title": thread.title,
        "tags": ", ".join(thread.tags),
        "projectId": thread.project_id or "",
        "assistantId": thread.assistant_id or "",
        "userId": thread.user_id or "",
        "metadata_original": [*thread.metadata, ""],
        "metadata_key": [*thread.metadata, ""],
        "metadata_value": [*thread.metadata.values(), ""],
        "variables_original": [*thread.variables, ""],
        "variables_key": [*thread.variables, ""],
        "variables_value": [*thread.variables.values(), ""],
    }
    for name, attr in (
        ("isArchived", "is_archived"),
        ("isActive", "is_active"),
        ("visibleInUi", "visible_in_ui"),
        ("isPinned", "is_pinned"),
    ):
        if getattr(thread, attr):
            data[name] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- access -------------------------------------------------------------------------------


def test_the_list_requires_a_login(client):
    response = client.get(LIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/ops/threads/")


def test_the_login_page_logs_in_and_logout_is_a_post(client, member):
    assert "Log in" in client.get("/accounts/login/").text

    response = client.post("/accounts/login/", {"username": "mia", "password": "pw-123456"})

    assert response.status_code == 302 and response["Location"] == "/ops/threads/"
    assert client.get(LIST).status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get(LIST).status_code == 302


def test_another_organizations_thread_is_an_html_404(mia, other_org):
    theirs = make(other_org, title="Theirs")

    for path in (page(theirs), "/ops/threads/not-a-uuid/"):
        response = mia.get(path)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html")
    assert mia.post(page(theirs), {"version": 1, "title": "Mine now"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.title == "Theirs"


def test_a_user_without_an_organization_is_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x"))

    assert client.get(LIST).status_code == 403


# --- list -----------------------------------------------------------------------------------


def test_the_list_shows_only_the_organizations_unarchived_threads(mia, org, other_org):
    make(org, title="Open", tags=["billing"], metadata={"priority": "high"}, isPinned=True)
    make(org, title="Old", isArchived=True)
    make(other_org, title="Theirs")

    response = mia.get(LIST)

    assert response.status_code == 200
    assert titles(response) == ["Open"]
    assert '<span class="chip">billing</span>' in response.text
    assert '<span class="badge pinned">pinned</span>' in response.text
    assert "priority=high" in response.text
    assert "1 thread" in response.text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"isArchived": "any"}, {"a", "b", "c", "d"}),
        ({"isArchived": "true"}, {"d"}),
        ({"search": "ALP"}, {"a"}),
        ({"tag": "x"}, {"a", "b"}),
        ({"tag": ["x", "y"]}, {"b"}),
        ({"visibleInUi": "false"}, {"c"}),
        ({"isPinned": "true"}, {"b"}),
        ({"projectId": "p1"}, {"a", "c"}),
        ({"metadata.team": "red"}, {"a"}),
    ],
)
def test_filters_use_the_api_parameter_names(mia, org, params, expected):
    make(org, title="a alpha", tags=["x"], projectId="p1", metadata={"team": "red"})
    make(org, title="b", tags=["x", "y"], isPinned=True)
    make(org, title="c", visibleInUi=False, projectId="p1", metadata={"team": "blue"})
    make(org, title="d", isArchived=True, tags=["x"])

    response = mia.get(LIST, params)

    assert {t.split()[0] for t in titles(response)} == expected


def test_a_metadata_filter_pair_becomes_a_metadata_parameter(mia):
    response = mia.get(LIST, {"metadata_key": "team", "metadata_value": "red", "search": "a"})

    assert response.status_code == 302
    assert response["Location"] == "/ops/threads/?search=a&metadata.team=red"


def test_bad_filters_are_shown_not_an_empty_page(mia, org):
    make(org, title="a")

    response = mia.get(LIST, {"isPinned": "maybe", "ordering": "color"})

    assert response.status_code == 400
    assert "These filters cannot be applied" in response.text
    assert "isPinned" in response.text and "ordering" in response.text
    assert response.context["page"] is None


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("title", ["a", "b", "c"]),
        ("-title", ["c", "b", "a"]),
        ("-messageCount", ["b", "c", "a"]),
        ("createdAt", ["c", "a", "b"]),
        ("-lastActivityAt", ["c", "b", "a"]),
    ],
)
def test_columns_sort_with_the_ordering_parameter(mia, org, ordering, expected):
    c, _, b = make(org, title="c"), make(org, title="a"), make(org, title="b")
    for thread, count in ((b, 2), (c, 1)):
        for _ in range(count):
            message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "hi"})

    response = mia.get(LIST, {"ordering": ordering})

    assert titles(response) == expected


def test_the_default_order_is_most_recently_updated_first(mia, org):
    first, _ = make(org, title="first"), make(org, title="second")
    thread_update(org=org, thread_id=first.pk, patch={"title": "first!"}, actor=ACTOR)

    assert titles(mia.get(LIST)) == ["first!", "second"]
    assert 'href="?ordering=title"' in mia.get(LIST).text


def link(response, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]*)" rel="{rel}">', response.text)
    return found and html.unescape(found.group(1))


def test_fifty_rows_a_page_with_next_and_previous_links(mia, org):
    for i in range(55):
        make(org, title=f"t{i:02d}")

    first = mia.get(LIST, {"ordering": "title", "search": "t"})
    second = mia.get(LIST + link(first, "next"))
    back = mia.get(LIST + link(second, "prev"))

    assert len(titles(first)) == 50 and titles(second) == [f"t{i}" for i in range(50, 55)]
    assert "55 threads" in first.text and link(first, "prev") is None and link(second, "next") is None
    assert link(first, "next").startswith("?ordering=title&search=t&cursor=")
    assert 'rel="next">Next ›</a>' in first.text and "« First" in second.text
    assert titles(back) == titles(first)


def test_along_a_date_the_links_say_newer_and_older(mia, org):
    for i in range(51):
        make(org, title=f"t{i}")

    assert 'rel="next">Older ›</a>' in mia.get(LIST).text
    assert 'rel="next">Newer ›</a>' in mia.get(LIST, {"ordering": "createdAt"}).text


@pytest.mark.parametrize("ordering", [f"{sign}{name}" for name in ORDERINGS for sign in ("", "-")])
def test_every_ordering_walks_every_row_once_forwards_and_back(mia, org, monkeypatch, ordering):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    made = [make(org, title=f"t{i % 3}") for i in range(7)]
    for count, thread in enumerate(made[:4]):  # some with messages and activity, the rest NULL
        for _ in range(count % 2 + 1):
            message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "x"})
    pages, response = [], mia.get(LIST, {"ordering": ordering})
    while True:
        pages.append([t.pk for t in response.context["page"]])
        if not link(response, "next"):
            break
        response = mia.get(LIST + link(response, "next"))
    walked = [pk for rows in pages for pk in rows]
    for rows in reversed(pages[:-1]):
        response = mia.get(LIST + link(response, "prev"))
        assert [t.pk for t in response.context["page"]] == rows
    assert link(response, "prev") is None

    field = ORDERINGS[ordering.lstrip("-")]
    stored = {t.pk: t for t in Thread.objects.all()}
    key = [(getattr(stored[pk], field) is None, getattr(stored[pk], field), pk) for pk in walked]
    assert sorted(walked) == sorted(t.pk for t in made) and len(pages) == 4
    present = [k[1:] for k in key if not k[0]]
    assert present == sorted(present, reverse=ordering.startswith("-"))
    assert [k[0] for k in key] == sorted(k[0] for k in key)  # NULLs last


def test_a_made_up_cursor_is_an_error_on_the_page(mia, org):
    make(org, title="a")
    forged = base64.urlsafe_b64encode(json.dumps({"v": "not a date", "k": "x"}).encode()).decode()

    for cursor in ("garbage", forged):
        response = mia.get(LIST, {"cursor": cursor})
        assert response.status_code == 400 and "The cursor is not valid." in response.text


def test_a_list_page_costs_the_same_queries_for_5_and_50_rows(mia, org):
    for i in range(5):
        make(org, title=f"t{i}", tags=["x"], metadata={"k": "v"})
    with CaptureQueriesContext(connection) as five:
        assert len(titles(mia.get(LIST))) == 5
    for i in range(45):
        make(org, title=f"u{i}", tags=["x"], metadata={"k": "v"})
    with CaptureQueriesContext(connection) as fifty:
        assert len(titles(mia.get(LIST))) == 50

    assert len(five) == len(fifty) <= 6


def test_a_superuser_picks_the_organization(client, admin_user, org, other_org):
    make(org, title="Ours")
    make(other_org, title="Theirs")
    client.force_login(admin_user)

    response = client.get(LIST, {"org": "globex"})

    assert titles(response) == ["Theirs"]
    assert '<option value="globex" selected>' in response.text
    assert "?org=globex" in response.text


def test_a_superuser_opens_any_organizations_thread_page(client, admin_user, org, other_org):
    theirs = make(other_org, title="Theirs")
    client.force_login(admin_user)

    response = client.get(page(theirs))
    saved = client.post(page(theirs), edit_data(theirs, title="Renamed by root"))

    assert response.status_code == 200 and 'href="/ops/threads/?org=globex"' in response.text
    assert saved.status_code == 302
    theirs.refresh_from_db()
    assert theirs.title == "Renamed by root"


# --- bulk actions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "start", "check"),
    [
        ("archive", {}, lambda t: t.is_archived),
        ("unarchive", {"isArchived": True}, lambda t: not t.is_archived),
        ("hide", {}, lambda t: not t.visible_in_ui),
        ("show", {"visibleInUi": False}, lambda t: t.visible_in_ui),
        ("pin", {}, lambda t: t.is_pinned),
        ("unpin", {"isPinned": True}, lambda t: not t.is_pinned),
    ],
)
def test_bulk_actions_change_the_checked_rows(mia, member, org, action, start, check):
    one, two, left = make(org, **start), make(org, **start), make(org, **start)

    response = mia.post(LIST + "?isArchived=any", {"ids": [one.pk, two.pk], "action": action}, follow=True)

    assert "2 of 2 selected thread(s) changed" in response.text
    assert response.redirect_chain[-1][0] == LIST + "?isArchived=any"
    for thread in (one, two, left):
        thread.refresh_from_db()
    assert check(one) and check(two) and not check(left)
    event = Event.objects.get(thread_id=one.pk, version=2)
    assert (event.actor_type, event.actor_name) == ("user", member.username)


def test_tag_actions_add_and_remove_one_tag(mia, org):
    one, two = make(org, tags=["a"]), make(org, tags=["a", "b"])

    mia.post(LIST, {"ids": [one.pk, two.pk], "action": "add_tag", "tag": " New "})
    mia.post(LIST, {"ids": [two.pk], "action": "remove_tag", "tag": "a"})

    one.refresh_from_db()
    two.refresh_from_db()
    assert one.tags == ["a", "new"] and two.tags == ["b", "new"]


def test_ids_of_another_organization_are_ignored(mia, org, other_org):
    ours, theirs = make(org), make(other_org)

    response = mia.post(LIST, {"ids": [ours.pk, theirs.pk, "junk"], "action": "archive"}, follow=True)

    assert "1 of 2 selected thread(s) changed" in response.text
    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert ours.is_archived and not theirs.is_archived and theirs.version == 1


def test_a_bad_tag_is_shown_and_changes_nothing(mia, org):
    one = make(org)

    response = mia.post(LIST, {"ids": [one.pk], "action": "add_tag", "tag": "x" * 65}, follow=True)

    assert "Nothing changed: Each tag must be 1 to 64 characters." in response.text
    one.refresh_from_db()
    assert one.tags == [] and one.version == 1


def test_a_thread_that_refuses_a_bulk_change_stops_the_run(mia, org):
    full = make(org, tags=[f"t{i}" for i in range(32)])
    fine = make(org)

    response = mia.post(LIST, {"ids": [full.pk, fine.pk], "action": "add_tag", "tag": "more"}, follow=True)

    assert "Stopped at a thread that refused the change" in response.text
    full.refresh_from_db()
    fine.refresh_from_db()
    assert len(full.tags) == 32 and full.version == 1 and fine.tags == []


def test_a_bulk_post_without_rows_or_tag_is_an_error_message(mia, org):
    one = make(org)

    no_rows = mia.post(LIST, {"action": "archive"}, follow=True)
    no_tag = mia.post(LIST, {"ids": [one.pk], "action": "add_tag"}, follow=True)

    assert "Nothing changed: Select at least one thread." in no_rows.text
    assert "Nothing changed: Enter the tag to add or remove." in no_tag.text
    one.refresh_from_db()
    assert one.version == 1


# --- the thread page --------------------------------------------------------------------------


def test_the_thread_page_shows_fields_history_and_messages(mia, org, thread):
    message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "Hi!"})

    response = mia.get(page(thread))

    text = response.text
    assert response.status_code == 200
    for label in (
        "Title",
        "Tags",
        "Archived",
        "Active",
        "Visible in UI",
        "Pinned",
        "Project ID",
        "Assistant ID",
        "User ID",
        "Key",
        "New key",
        "Value",
    ):
        assert f">{label}</label>" in text, label
    assert text.count('name="metadata_key"') == 2 and text.count('name="variables_key"') == 2
    assert 'name="metadata_original" value="a"' in text
    assert '<button type="submit" class="primary">Save</button>' in text
    assert "metadata.a: (none) → 1" in text and "Hi!" in text
    assert 'name="csrfmiddlewaretoken"' in text


def test_saving_sets_renames_removes_and_adds_keys(mia, member, org):
    thread = make(org, title="T", metadata={"keep": "1", "drop": "2", "old": "3"})

    response = mia.post(
        page(thread),
        edit_data(
            thread,
            title="T2",
            tags="B, a",
            isPinned="on",
            metadata_original=["keep", "drop", "old", ""],
            metadata_key=["keep", "", "new", "added"],
            metadata_value=["1", "2", "3", "4"],
            variables_value=["changed", "5"],
            variables_key=["v", "w"],
        ),
    )

    assert response.status_code == 302 and response["Location"] == page(thread)
    thread.refresh_from_db()
    assert thread.title == "T2" and thread.tags == ["b", "a"] and thread.is_pinned
    assert thread.metadata == {"keep": "1", "new": "3", "added": "4"}
    assert thread.variables == {"v": "changed", "w": "5"} and thread.version == 2
    event = Event.objects.get(thread_id=thread.pk, version=2)
    assert event.actor_name == member.username
    assert set(event.changes["metadata"]) == {"drop", "old", "new", "added"}
    assert "Saved (version 2)." in mia.get(page(thread)).text


def test_saving_an_unchanged_page_writes_nothing(mia, thread):
    response = mia.post(page(thread), edit_data(thread), follow=True)

    assert "Nothing to save" in response.text
    thread.refresh_from_db()
    assert thread.version == 1


def test_what_a_browser_cannot_show_survives_an_unrelated_save(mia, org):
    """An <input> drops line breaks and the tags field splits on commas: unchanged, they stay."""
    thread = make(org, title="Two\nlines", tags=["a,b"], variables={"prompt": "Hi\nthere"}, metadata={"k\ney": "v"})

    response = mia.post(
        page(thread),
        edit_data(
            thread,
            title="Twolines",
            tags="a,b",
            variables_value=["Hi\r\nthere", ""],
            metadata_key=["key", ""],
            isPinned="on",
        ),
    )

    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.title == "Two\nlines" and thread.tags == ["a,b"] and thread.is_pinned
    assert thread.variables == {"prompt": "Hi\nthere"} and thread.metadata == {"k\ney": "v"}


def test_a_textarea_value_is_stored_with_unix_line_breaks(mia, thread):
    mia.post(page(thread), edit_data(thread, variables_value=["one\r\ntwo", ""]))

    thread.refresh_from_db()
    assert thread.variables == {"v": "one\ntwo"}


def test_a_list_value_is_edited_as_json(mia, org):
    thread = make(org, metadata={"l": ["a", "b"]})

    assert ">\n[&quot;a&quot;, &quot;b&quot;]</textarea>" in mia.get(page(thread)).text
    mia.post(page(thread), edit_data(thread, metadata_value=['["a", "c"]', ""]))
    bad = mia.post(page(thread), edit_data(thread, version=2, metadata_value=["a, c", ""]))

    thread.refresh_from_db()
    assert thread.metadata == {"l": ["a", "c"]}
    assert "This key holds a list" in bad.text


def test_a_too_long_value_is_shown_inline_and_nothing_is_saved(mia, thread):
    response = mia.post(
        page(thread),
        edit_data(
            thread,
            title="Changed",
            metadata_key=["a", "big"],
            metadata_value=["1", "x" * 600],
            metadata_original=["a", ""],
        ),
    )

    assert response.status_code == 400
    rows = response.context["maps"][0].rows
    assert [r.error for r in rows] == ["", "Metadata values cannot exceed 512 characters."]
    assert 'aria-invalid="true"' in response.text
    assert 'value="Changed"' in response.text  # the operator's input is kept
    thread.refresh_from_db()
    assert (thread.title, thread.metadata, thread.version) == ("Hello", {"a": "1"}, 1)


def test_a_too_long_title_is_shown_next_to_the_title(mia, thread):
    response = mia.post(page(thread), edit_data(thread, title="t" * 300))

    assert response.context["form"].errors["title"] == ["Title cannot exceed 256 characters."]
    thread.refresh_from_db()
    assert thread.title == "Hello"


def test_too_many_keys_is_shown_above_the_editor(mia, thread):
    keys = [f"k{i}" for i in range(17)]
    response = mia.post(
        page(thread),
        edit_data(thread, metadata_original=["a"] + [""] * 17, metadata_key=["a", *keys], metadata_value=["1"] * 18),
    )

    assert response.context["maps"][0].error == "Metadata cannot exceed 16 key-value pairs"
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1"}


def test_a_value_without_a_key_and_a_repeated_key_are_errors(mia, thread):
    keyless = mia.post(page(thread), edit_data(thread, metadata_value=["1", "orphan"]))
    twice = mia.post(
        page(thread), edit_data(thread, metadata_original=["a", ""], metadata_key=["a", "a"], metadata_value=["1", "2"])
    )

    assert keyless.context["maps"][0].error == "A value needs a key."
    assert "This key appears twice." in twice.text
    thread.refresh_from_db()
    assert thread.version == 1


def test_saving_a_page_loaded_before_another_change_is_a_conflict(mia, org, thread):
    loaded = edit_data(thread, title="Mine")
    thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"b": "2"}}, actor=ACTOR)

    response = mia.post(page(thread), loaded)

    assert response.status_code == 412
    assert "Someone changed this thread since you opened this page" in response.text
    thread.refresh_from_db()
    assert (thread.title, thread.metadata) == ("Hello", {"a": "1", "b": "2"})


# --- viewers and CSRF -------------------------------------------------------------------------


def test_a_viewer_sees_everything_and_no_forms(vic, thread):
    listing = vic.get(LIST)
    detail = vic.get(page(thread))

    assert titles(listing) == ["Hello"]
    assert 'name="ids"' not in listing.text and 'name="action"' not in listing.text
    assert "<form" not in detail.text.split("</header>")[1]
    assert "You can view this thread but not change it." in detail.text
    assert "Hello" in detail.text and "x" in detail.text


def test_a_viewer_cannot_post(vic, thread):
    bulk = vic.post(LIST, {"ids": [thread.pk], "action": "archive"})
    edit = vic.post(page(thread), edit_data(thread, title="Viewer was here"))

    assert bulk.status_code == 403 and edit.status_code == 403
    assert bulk["Content-Type"].startswith("text/html")
    thread.refresh_from_db()
    assert thread.version == 1 and not thread.is_archived


def test_posts_without_a_csrf_token_are_refused(member, thread):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)

    bulk = client.post(LIST, {"ids": [thread.pk], "action": "archive"})
    edit = client.post(page(thread), edit_data(thread, title="No token"))

    assert bulk.status_code == 403 and edit.status_code == 403
    thread.refresh_from_db()
    assert thread.version == 1


def test_posts_with_the_csrf_token_are_accepted(member, thread):
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    token = client.get(page(thread)).context["csrf_token"]

    response = client.post(page(thread), edit_data(thread, title="With token", csrfmiddlewaretoken=str(token)))

    assert response.status_code == 302
    thread.refresh_from_db()
    assert thread.title == "With token"


def test_a_viewer_of_another_org_cannot_see_our_threads(client, other_org, thread):
    client.force_login(make_user(other_org, "olga", "viewer"))

    assert client.get(page(thread)).status_code == 404
    assert titles(client.get(LIST)) == []


def test_past_a_thousand_rows_the_queries_stay_few(mia, org):
    def load(**params):
        with CaptureQueriesContext(connection) as queries:
            response = mia.get(LIST, params)
        return response, len(queries)

    Thread.objects.bulk_create([Thread(organization=org, title=f"t{i}") for i in range(5)])
    small, small_queries = load()
    Thread.objects.bulk_create([Thread(organization=org, title=f"u{i}") for i in range(1000)])
    large, large_queries = load()

    assert small.context["count"].exact and "5 threads" in small.text
    assert large.context["count"].value == 1005 or not large.context["count"].exact
    assert re.search(r"(1,005|more than 1,000) threads", large.text)
    # + the planner's estimate, and a count up to 10,000 when it is low
    assert small_queries <= large_queries <= small_queries + 2
