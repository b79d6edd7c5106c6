"""The operator pages and the admin in a real browser: Debian's Chromium driven by Playwright.

Skipped when /usr/bin/chromium is missing (see .ci/browser-deps.sh). Screenshots land in
artifacts/screenshots/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from threads.keys import api_key_create
from threads.models import Thread
from threads.services import message_add, thread_create

from .conftest import ACTOR

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, transactional_db):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in(page, username: str) -> None:
    page.goto("/ops/threads/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ops/threads/")


def api_get(page, thread, key: str) -> dict:
    response = page.request.get(f"/api/v1/threads/{thread.pk}",
                                headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    return response.json()


def test_an_operator_filters_and_archives_two_threads(page, org, member):
    key = api_key_create(org=org, name="check", scope="read")[1]
    one = thread_create(org=org, actor=ACTOR, data={"title": "Refund one", "tags": ["billing"],
                                                    "metadata": {"priority": "high"}})
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
    thread = thread_create(org=org, actor=ACTOR, data={
        "title": "Invoice question", "tags": ["billing"], "metadata": {"priority": "low"},
        "variables": {"customer_name": "Ada"}})
    message_add(org=org, thread_id=thread.pk, actor=ACTOR,
                data={"role": "user", "content": "Where is my invoice?"})

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
    response = page.request.post(f"/ops/threads/{thread.pk}/", headers={"X-CSRFToken": token},
                                 form={"version": "1", "title": "Changed by a viewer"})
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

    page.get_by_role("link", name="Admin me").click()
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


def test_the_superuser_sees_another_organization_on_the_ops_pages(page, org, other_org,
                                                                  django_user_model):
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
