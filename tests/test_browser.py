"""The operator pages and the admin in a real browser: Debian's Chromium driven by Playwright, at
1400 × 1000.

Skipped when /usr/bin/chromium is missing (see .ci/browser-deps.sh). Every screenshot is kept as an
artifact of the test run, in the run's folder: $ARTIFACTS_DIR (.ci/run gives each CI run its own,
artifacts/ci/<time>/), else artifacts/; under it screenshots/<database>/ (sqlite or postgresql: CI
runs the suite on both), emptied when the run starts so that it holds this run's screenshots only.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from threads.keys import api_key_create
from threads.models import Thread
from threads.services import message_add, thread_create

from .conftest import ACTOR

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("ARTIFACTS_DIR") or Path(__file__).resolve().parent.parent / "artifacts")
SHOTS = ARTIFACTS / "screenshots" / connection.vendor
VIEWPORT = {"width": 1400, "height": 1000}
PASSWORD = "pw-123456"

# Playwright's sync API keeps an event loop in this thread; the ORM calls of the tests are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module", autouse=True)
def screenshots():
    """This run's screenshots only: an earlier run's would pass for this one's."""
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    yield SHOTS


@pytest.fixture
def page(browser, live_server, transactional_db):
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> Path:
    """A screenshot of the whole page, kept in the run's folder: 1400 px wide, at least 1000 high."""
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the PNG's IHDR
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"], (name, width, height)
    return path


def log_in(page, username: str) -> None:
    page.goto("/ops/threads/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ops/threads/")


def api_get(page, thread, key: str) -> dict:
    response = page.request.get(f"/api/v1/threads/{thread.pk}", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    return response.json()


def test_an_operator_filters_and_archives_two_threads(page, org, member):
    key = api_key_create(org=org, name="check", scope="read")[1]
    one = thread_create(
        org=org, actor=ACTOR, data={"title": "Refund one", "tags": ["billing"], "metadata": {"priority": "high"}}
    )
    two = thread_create(org=org, actor=ACTOR, data={"title": "Refund two", "tags": ["billing"]})
    other = thread_create(org=org, actor=ACTOR, data={"title": "Login trouble", "tags": ["bug"]})

    log_in(page, member.username)
    assert page.locator("#row-count").inner_text() == "3 threads"
    page.get_by_label("Tag", exact=True).fill("billing")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#row-count").inner_text() == "2 threads"
    page.get_by_label("Select Refund one").check()
    page.get_by_label("Select Refund two").check()
    page.get_by_label("Action", exact=True).select_option("archive")
    shot(page, "ops-list-filtered")
    page.get_by_role("button", name="Apply").click()

    page.get_by_text("Archive: 2 of 2 selected thread(s) changed.").wait_for()
    assert page.locator("#row-count").inner_text() == "0 threads"  # archived are hidden
    assert "tag=billing" in page.url
    shot(page, "ops-list-after-archive")
    assert api_get(page, one, key)["isArchived"] is True
    assert api_get(page, two, key)["isArchived"] is True
    assert api_get(page, other, key)["isArchived"] is False


def test_an_operator_edits_metadata_and_sees_an_inline_error(page, org, member):
    key = api_key_create(org=org, name="check", scope="read")[1]
    thread = thread_create(
        org=org,
        actor=ACTOR,
        data={
            "title": "Invoice question",
            "tags": ["billing"],
            "metadata": {"priority": "low"},
            "variables": {"customer_name": "Ada"},
        },
    )
    message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "Where is my invoice?"})

    log_in(page, member.username)
    page.get_by_role("link", name="Invoice question").click()
    metadata = page.locator("#metadata-editor")
    metadata.get_by_label("Value").first.fill("high")
    metadata.get_by_label("New key").fill("channel")
    metadata.get_by_label("Value").last.fill("email")
    page.get_by_label("Pinned").check()
    page.get_by_role("button", name="Save").click()

    page.get_by_text("Saved (version 3).").wait_for()
    stored = api_get(page, thread, key)
    assert stored["metadata"] == {"priority": "high", "channel": "email"}
    assert stored["isPinned"] is True and stored["variables"] == {"customer_name": "Ada"}
    shot(page, "ops-thread-saved")

    metadata.get_by_label("New key").fill("notes")
    metadata.get_by_label("Value").last.fill("x" * 600)
    page.get_by_label("Title").fill("Should not be saved")
    page.get_by_role("button", name="Save").click()

    error = page.locator("#metadata-editor .row.invalid .errorlist")
    assert error.inner_text() == "Metadata values cannot exceed 512 characters."
    assert page.get_by_label("Title").input_value() == "Should not be saved"
    shot(page, "ops-thread-inline-error")
    stored = api_get(page, thread, key)
    assert stored["version"] == 3 and stored["title"] == "Invoice question"
    assert "notes" not in stored["metadata"]


def test_a_viewer_can_look_but_not_change(page, org, viewer):
    thread = thread_create(org=org, actor=ACTOR, data={"title": "Read me", "metadata": {"a": "1"}})

    log_in(page, viewer.username)
    assert page.get_by_role("link", name="Read me").is_visible()
    assert page.locator('input[name="ids"]').count() == 0
    assert page.get_by_role("button", name="Apply").count() == 0
    page.get_by_role("link", name="Read me").click()
    page.get_by_text("You can view this thread but not change it.").wait_for()
    assert page.get_by_role("button", name="Save").count() == 0
    shot(page, "ops-thread-viewer")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"/ops/threads/{thread.pk}/",
        headers={"X-CSRFToken": token},
        form={"version": "1", "title": "Changed by a viewer"},
    )
    assert response.status == 403
    thread.refresh_from_db()
    assert thread.title == "Read me" and thread.version == 1


def test_the_admin_changelist_and_change_form(page, org, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    thread = thread_create(org=org, actor=ACTOR, data={"title": "Admin me", "metadata": {"a": "1"}})
    thread_create(org=org, actor=ACTOR, data={"title": "Someone else"})

    page.goto("/admin/")
    page.locator("#id_username").fill("root")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url("**/admin/")
    page.goto("/admin/threads/thread/")
    page.locator("#searchbar").fill("admin me")
    page.locator("#changelist-search input[type=submit]").click()
    page.wait_for_url("**q=admin+me*")
    page.wait_for_load_state()
    # count() does not wait: the results table is read once the searched page has loaded
    page.get_by_role("link", name="Admin me").wait_for()
    assert page.locator("#result_list tbody tr").count() == 1
    shot(page, "admin-changelist")

    page.get_by_role("link", name="Admin me").first.click()
    page.locator("#id_metadata").fill('{"a": "1", "b": "' + "x" * 600 + '"}')
    page.locator("input[name=_continue]").click()
    error = page.locator(".field-metadata .errorlist").inner_text()
    assert error == "b: Metadata values cannot exceed 512 characters."
    shot(page, "admin-change-form-error")
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1"} and thread.version == 1

    page.locator("#id_metadata").fill('{"b": "2"}')
    page.locator("input[name=_continue]").click()
    page.locator(".messagelist .success").wait_for()
    thread.refresh_from_db()
    assert thread.metadata == {"b": "2"} and thread.version == 2
    assert "metadata.a: 1 → (none)" in page.locator(".field-history").inner_text()
    shot(page, "admin-change-form-saved")


def test_the_superuser_sees_another_organization_on_the_ops_pages(page, org, other_org, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    thread_create(org=other_org, actor=ACTOR, data={"title": "Globex thread"})

    log_in(page, "root")
    page.get_by_label("Organization").select_option("globex")
    page.get_by_role("button", name="Filter").click()
    page.get_by_role("link", name="Globex thread").click()
    page.get_by_label("Title").fill("Globex thread, renamed")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved (version 2).").wait_for()
    assert Thread.objects.get(organization=other_org).title == "Globex thread, renamed"


# --- the pages' layout at 1400 × 1000 -------------------------------------------------------

ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
# Anything that looks like a time: ISO dates with whatever follows, or Django's "Dec. 7, 2026, 5 a.m.".
LOOKS_LIKE_A_TIME = re.compile(
    r"\d{4}-\d\d-\d\d(?:[ T][\d:.]+(?:Z|[+-]\d\d:\d\d| [A-Z]{2,5})?)?"
    r"|\b(?:Jan|Feb|March|April|May|June|July|Aug|Sept|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}(?:, [\d:]+ [ap]\.m\.)?"
    r"|\b\d{1,2}(?::\d\d)? [ap]\.m\.|\bnoon\b|\bmidnight\b"
)


def log_in_admin(page, username: str = "root") -> None:
    page.goto("/admin/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url("**/admin/")


def long_threads(org, other_org):
    """Threads with every column at its longest: titles, ids, an organization's long slug."""
    threads = [
        thread_create(
            org=org,
            actor=ACTOR,
            data={
                "title": f"A customer asks about a refund for the invoice of March, number {n}",
                "projectId": "project-" + "p" * 100,
                "userId": "user-" + "u" * 100,
                "isPinned": n % 2 == 0,
                "tags": ["billing", "refund"],
            },
        )
        for n in range(5)
    ]
    threads.append(thread_create(org=other_org, actor=ACTOR, data={"title": "x" * 256}))
    for thread in threads[:2]:
        message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "hi"})
    return threads


def columns_past(page, table: str, container: str) -> list[str]:
    """The headings of ``table``'s columns that end past the viewport or outside ``container``."""
    return page.evaluate(
        """([table, container]) => {
            const box = document.querySelector(container).getBoundingClientRect();
            return [...document.querySelectorAll(table + ' thead th')]
                .filter(th => { const r = th.getBoundingClientRect();
                                return r.right > window.innerWidth || r.right > box.right + 0.5; })
                .map(th => th.innerText.trim() || th.className);
        }""",
        [table, container],
    )


def row_heights(page, table: str) -> list[float]:
    return page.evaluate(
        "(table) => [...document.querySelectorAll(table + ' tbody tr')].map(tr => tr.getBoundingClientRect().height)",
        table,
    )


def test_the_admin_thread_changelist_fits_1400_px_with_one_line_a_row(page, org, other_org, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)
    other_org.slug = "globex-international-holdings-europe"
    other_org.save()
    threads = long_threads(org, other_org)

    log_in_admin(page)
    page.goto("/admin/threads/thread/")
    shot(page, "admin-thread-changelist")

    assert columns_past(page, "#result_list", "#changelist .results") == []
    assert page.evaluate(
        "() => { const r = document.querySelector('#changelist .results'); return r.scrollWidth <= r.clientWidth; }"
    )
    heights = row_heights(page, "#result_list")
    assert len(heights) == len(threads) and max(heights) - min(heights) < 1 and max(heights) < 40  # one line
    headings = page.locator("#result_list thead th").all_inner_texts()
    assert [h.strip().lower() for h in headings[-6:]] == [
        "archived",
        "visible",
        "active",
        "pinned",
        "messages",
        "updated at",
    ]
    # The short id: 8 characters, the whole id on hover and behind its link.
    thread = threads[0]
    short = page.locator(f'#result_list td.field-short_id a[title="{thread.pk}"]')
    assert short.inner_text() == str(thread.pk)[:8]
    assert short.get_attribute("href").endswith(f"/admin/threads/thread/{thread.pk}/change/")
    # A cut title keeps its whole text on hover; flags are the admin's icons.
    title = page.locator("#result_list .field-thread .clip").first
    assert title.get_attribute("title") == title.text_content()
    assert page.locator("#result_list td.field-pinned img[src*='icon-yes']").count() == 3
    assert page.locator("#result_list td.field-archived img[src*='icon-no']").count() == len(threads)


def test_every_time_on_the_pages_is_written_one_way_with_its_zone(page, org, member, django_user_model):
    from threads.webhooks.services import endpoint_create

    member.is_staff = member.is_superuser = True
    member.save()
    thread = thread_create(org=org, actor=ACTOR, data={"title": "Timed", "tags": ["a"]})
    message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "hi"})
    api_key_create(org=org, name="timed", scope="read")
    with override_settings(WEBHOOK_ALLOWED_NETWORKS=["93.184.0.0/16"]):
        endpoint = endpoint_create(org=org, data={"url": "https://93.184.215.14/hook", "actions": ["updated"]})

    log_in(page, member.username)
    seen = {}
    for name, path in [
        ("ops-list", "/ops/threads/"),
        ("ops-thread", f"/ops/threads/{thread.pk}/"),
        ("admin-threads", "/admin/threads/thread/"),
        ("admin-thread", f"/admin/threads/thread/{thread.pk}/change/"),
        ("admin-events", "/admin/threads/event/"),
        ("admin-keys", "/admin/threads/apikey/"),
        ("admin-webhooks", "/admin/webhooks/webhookendpoint/"),
        ("admin-webhook", f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/"),
    ]:
        page.goto(path)
        text = page.locator("body").inner_text()
        seen[name] = LOOKS_LIKE_A_TIME.findall(text)
        assert seen[name], f"no time on {path}"
        assert [t for t in seen[name] if not ONE_FORMAT.fullmatch(t)] == [], (path, seen[name])
    shot(page, "admin-webhook-change")
    # The history's lastActivityAt too, which the event keeps as ISO-8601 text.
    page.goto(f"/ops/threads/{thread.pk}/")
    assert re.search(r"lastActivityAt: \(none\) → \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.inner_text("body"))


def test_an_archived_thread_page_has_a_banner_and_its_flags_sit_in_one_row(page, org, member):
    archived = thread_create(org=org, actor=ACTOR, data={"title": "Old case", "isArchived": True})
    current = thread_create(org=org, actor=ACTOR, data={"title": "New case"})

    log_in(page, member.username)
    page.goto(f"/ops/threads/{archived.pk}/")
    banner = page.locator("#archived-banner")
    assert banner.is_visible() and "This thread is archived." in banner.inner_text()
    box, heading = banner.bounding_box(), page.locator("h1").bounding_box()
    assert box["y"] > heading["y"] and box["y"] < page.get_by_label("Title").bounding_box()["y"]  # at the top
    flags = [page.get_by_label(label, exact=True) for label in ("Archived", "Active", "Visible in UI", "Pinned")]
    tops = [flag.bounding_box()["y"] for flag in flags]
    assert max(tops) - min(tops) < 2, tops  # one row, "Pinned" no longer under "Title"
    for label in ("Archived", "Active", "Visible in UI", "Pinned"):  # each label beside its box
        box_y = page.get_by_label(label, exact=True).bounding_box()
        text_y = page.locator("#flags label", has_text=label).first.bounding_box()
        assert abs((box_y["y"] + box_y["height"] / 2) - (text_y["y"] + text_y["height"] / 2)) < 4
    assert page.get_by_label("Title").bounding_box()["y"] < min(tops)
    shot(page, "ops-thread-archived")

    page.get_by_label("Archived", exact=True).uncheck()
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved (version 2).").wait_for()
    assert page.locator("#archived-banner").count() == 0
    page.goto(f"/ops/threads/{current.pk}/")
    assert page.locator("#archived-banner").count() == 0


def test_the_operator_list_keeps_every_column_on_screen_with_long_titles(page, org, other_org, member):
    long_threads(org, other_org)
    thread_create(org=org, actor=ACTOR, data={"title": "y" * 256})

    log_in(page, member.username)
    shot(page, "ops-list")
    assert columns_past(page, "table.threads", "main") == []
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_the_webhooks_admin_shows_actions_as_words(page, org, django_user_model):
    from threads.webhooks.services import endpoint_create

    django_user_model.objects.create_superuser("root", password=PASSWORD)
    with override_settings(WEBHOOK_ALLOWED_NETWORKS=["93.184.0.0/16"]):
        endpoint_create(org=org, data={"url": "https://93.184.215.14/a", "actions": ["updated", "deleted"]})
        endpoint_create(org=org, data={"url": "https://93.184.215.14/b"})

    log_in_admin(page)
    page.goto("/admin/webhooks/webhookendpoint/")
    shot(page, "admin-webhooks")
    cells = sorted(page.locator("#result_list td.field-wanted").all_inner_texts())
    assert cells == ["every action", "updated, deleted"]
    assert '["' not in page.locator("#result_list").inner_text()
