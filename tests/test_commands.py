"""The operator commands: each against the real database, through the services.

Round trip, as these tests mean it: ``export → import`` into a fresh organization reproduces
every line exactly except ``organizationId`` (the new organization), ``updatedAt`` (the time of
the import) and ``version`` (the import writes its own history: 1 + one per message). The ids,
``createdAt``, ``lastActivityAt``, ``messageCount``, every writable field and every message —
id, role, content, metadata, createdAt — are equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from threads.api.serializers import ThreadSerializer
from threads.api.tokens import ChatToken
from threads.keys import hash_api_key
from threads.models import ApiKey, Event, Message, Organization, Thread
from threads.services import message_add, thread_create, thread_update

from .conftest import ACTOR, make_org


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def events_of(thread) -> list[Event]:
    return list(Event.objects.filter(thread_id=thread.pk).order_by("version"))


def make_thread(org, messages=(), **data):
    thread = thread_create(org=org, actor=ACTOR, data=data)
    for message in messages:
        message_add(org=org, thread_id=thread.pk, actor=ACTOR, data=message)
    thread.refresh_from_db()
    return thread


# --- update_thread ---------------------------------------------------------------------------


def test_update_thread_merges_the_patch_and_prints_the_thread(thread):
    out, _ = run(
        "update_thread",
        str(thread.pk),
        "--set",
        "b=2",
        "--unset",
        "a",
        "--var",
        "w=z=1",
        "--unset-var",
        "v",
        "--title",
        "Renamed",
        "--tag",
        " Two ",
        "--untag",
        "one",
        "--archive",
        "--hide",
        "--if-version",
        "1",
    )
    thread.refresh_from_db()
    assert (thread.metadata, thread.variables, thread.tags) == ({"b": "2"}, {"w": "z=1"}, ["two"])
    assert (thread.title, thread.is_archived, thread.visible_in_ui) == ("Renamed", True, False)
    assert thread.version == 2
    assert json.loads(out) == json.loads(json.dumps(ThreadSerializer(thread).data))
    event = events_of(thread)[-1]
    assert (event.actor_type, event.actor_name) == ("command", "update_thread")
    assert event.changes["metadata"] == {"a": {"from": "1", "to": None}, "b": {"from": None, "to": "2"}}


def test_update_thread_with_nothing_new_writes_no_event(thread):
    run("update_thread", str(thread.pk), "--set", "a=1", "--tag", "one")
    thread.refresh_from_db()
    assert thread.version == 1
    assert len(events_of(thread)) == 1


def test_update_thread_unarchives_and_shows(org):
    thread = make_thread(org, isArchived=True, visibleInUi=False)
    run("update_thread", str(thread.pk), "--unarchive", "--show")
    thread.refresh_from_db()
    assert (thread.is_archived, thread.visible_in_ui) == (False, True)


def test_update_thread_with_a_stale_version_fails_and_changes_nothing(thread):
    with pytest.raises(CommandError, match=r"version_mismatch: .* 1, not 7\. \(param: --if-v"):
        run("update_thread", str(thread.pk), "--title", "X", "--if-version", "7")
    thread.refresh_from_db()
    assert (thread.title, thread.version) == ("Hello", 1)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "novalue"], "--set takes KEY=VALUE"),
        (["--title", "x" * 257], r"title_too_long: .* \(param: title\)"),
        ([f"--set=k{i}=v" for i in range(16)], r"metadata_limit_exceeded: .* \(param: metadata\)"),
        (["--var", "k=a\x00b"], r"invalid_parameters: .* \(param: variables.k\)"),
        (["--tag", "x" * 65], "tags_invalid"),
        (["--archive", "--unarchive"], "not allowed with argument --archive"),
        (["--if-version", "two"], "invalid int value"),
    ],
)
def test_update_thread_refuses_bad_input_with_one_clear_line(thread, args, message):
    with pytest.raises(CommandError, match=message):
        run("update_thread", str(thread.pk), *args)
    thread.refresh_from_db()
    assert thread.version == 1 and len(events_of(thread)) == 1


def test_update_thread_reaches_any_organization_unless_scoped(thread, other_org):
    run("update_thread", str(thread.pk), "--set", "by=operator")
    thread.refresh_from_db()
    assert thread.metadata["by"] == "operator"
    with pytest.raises(CommandError, match=f"No thread '{thread.pk}' in organization 'globex'"):
        run("update_thread", str(thread.pk), "--org", "globex", "--set", "x=y")
    with pytest.raises(CommandError, match="No thread 'not-a-uuid'"):
        run("update_thread", "not-a-uuid", "--set", "x=y")
    with pytest.raises(CommandError, match="No organization 'nope'"):
        run("update_thread", str(thread.pk), "--org", "nope")


def subprocess_env() -> dict[str, str]:
    """The test database, as the child process's DATABASE_URL (transactional_db: committed)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "threads_project.settings"}


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


def test_update_thread_from_the_shell_fails_with_status_1_and_one_line(transactional_db):
    org = make_org("shell")
    thread = make_thread(org, title="Before", metadata={"a": "1"})
    for args in (
        ["--bogus"],
        ["--if-version", "two"],
        ["--set", "novalue"],
        ["--title", "x" * 300],
        ["--if-version", "9", "--title", "T"],
    ):
        done = manage("update_thread", str(thread.pk), *args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith("CommandError: "), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""
    thread.refresh_from_db()
    assert (thread.title, thread.version, len(events_of(thread))) == ("Before", 1, 1)

    done = manage("update_thread", str(thread.pk), "--set", "a=2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metadata"] == {"a": "2"}
    assert events_of(thread)[-1].actor_type == "command"


# --- issue_chat_token ------------------------------------------------------------------------


def test_issue_chat_token_prints_a_token_for_the_thread_on_the_last_line(thread):
    out, _ = run("issue_chat_token", str(thread.pk), "--ttl", "120")
    token = ChatToken(out.splitlines()[-1])
    assert (token["thread_id"], token["org_id"]) == (str(thread.pk), str(thread.organization_id))
    assert 110 <= token["exp"] - timezone.now().timestamp() <= 120


@pytest.mark.parametrize("ttl", ["59", "86401", "-1"])
def test_issue_chat_token_refuses_a_ttl_out_of_range(thread, ttl):
    with pytest.raises(CommandError, match="--ttl must be from 60 to 86400"):
        run("issue_chat_token", str(thread.pk), "--ttl", ttl)


def test_issue_chat_token_refuses_an_unknown_thread(db):
    with pytest.raises(CommandError, match="No thread"):
        run("issue_chat_token", "00000000-0000-0000-0000-000000000000")


# --- archive_stale_threads -------------------------------------------------------------------


@pytest.fixture
def stale(org, other_org):
    """Threads of two organizations, some inactive for 40 days, one active, one archived."""
    old = timezone.now() - timedelta(days=40)
    quiet = thread_create(org=org, actor=ACTOR, data={"title": "quiet"}, created_at=old)
    talked = thread_create(org=org, actor=ACTOR, data={"title": "talked"}, created_at=old)
    message_add(org=org, thread_id=talked.pk, actor=ACTOR, data={"role": "user", "content": "hi"})
    fresh = thread_create(org=org, actor=ACTOR, data={"title": "fresh"})
    done = thread_create(org=org, actor=ACTOR, data={"isArchived": True}, created_at=old)
    elsewhere = thread_create(org=other_org, actor=ACTOR, data={"title": "x"}, created_at=old)
    return {"quiet": quiet, "talked": talked, "fresh": fresh, "done": done, "elsewhere": elsewhere}


def test_archive_stale_threads_dry_run_counts_and_changes_nothing(stale):
    out, _ = run("archive_stale_threads", "--inactive-days", "30", "--dry-run")
    assert out.strip() == "2 threads would be archived (dry run)."
    assert Thread.objects.filter(is_archived=True).count() == 1


def test_archive_stale_threads_archives_through_the_service_with_history(stale):
    out, _ = run("archive_stale_threads", "--inactive-days", "30", "--org", "acme")
    assert out.strip() == "1 threads archived."
    archived = {t.title for t in Thread.objects.filter(is_archived=True).exclude(title="")}
    assert archived == {"quiet"}
    quiet = Thread.objects.get(pk=stale["quiet"].pk)
    assert quiet.version == 2
    event = events_of(quiet)[-1]
    assert (event.actor_type, event.actor_name) == ("command", "archive_stale_threads")
    assert event.changes == {"isArchived": {"from": False, "to": True}}

    out, _ = run("archive_stale_threads", "--inactive-days", "30")
    assert out.strip() == "1 threads archived."  # the other organization's
    out, _ = run("archive_stale_threads", "--inactive-days", "30")
    assert out.strip() == "0 threads archived."


def test_archive_stale_threads_counts_the_last_message_not_the_creation(org):
    old = timezone.now() - timedelta(days=10)
    thread = thread_create(org=org, actor=ACTOR, data={}, created_at=old - timedelta(days=90))
    message_add(org=org, thread_id=thread.pk, actor=ACTOR, data={"role": "user", "content": "x"})
    assert run("archive_stale_threads", "--inactive-days", "5", "--dry-run")[0].startswith("0 ")
    assert run("archive_stale_threads", "--inactive-days", "0", "--dry-run")[0].startswith("1 ")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--inactive-days", "-1"], "--inactive-days must be 0 or more"),
        ([], "the following arguments are required: --inactive-days"),
        (["--inactive-days", "3", "--org", "nope"], "No organization 'nope'"),
    ],
)
def test_archive_stale_threads_refuses_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("archive_stale_threads", *args)


# --- export_threads and import_threads -------------------------------------------------------


@pytest.fixture
def varied(org, other_org):
    """Threads with every kind of field, and one of another organization."""
    make_thread(
        org,
        title="Élan ✓",
        metadata={"k": "v", "list": ["a", "b"]},
        variables={"name": "Ada"},
        tags=["x", "y"],
        isPinned=True,
        projectId="p1",
        assistantId="a1",
        userId="u1",
        messages=[
            {"role": "user", "content": "hello\nworld", "metadata": {"m": "1"}},
            {"role": "assistant", "content": "hi ✓"},
            {"role": "tool", "content": ""},
        ],
    )
    make_thread(org, isArchived=True, visibleInUi=False, isActive=False)
    thread = make_thread(org, title="edited", messages=[{"role": "system", "content": "s"}])
    thread_update(org=org, thread_id=thread.pk, actor=ACTOR, patch={"metadata": {"z": "1"}})
    make_thread(other_org, title="not mine")


def export(*args: str) -> list[dict]:
    out, _ = run("export_threads", *args)
    return [json.loads(line) for line in out.splitlines()]


def test_export_threads_writes_one_line_a_thread_with_its_messages(varied, org):
    lines = export("--org", "acme")
    assert len(lines) == 3
    by_title = {line["title"]: line for line in lines}
    first = by_title["Élan ✓"]
    thread = Thread.objects.get(pk=first["id"])
    assert {k: v for k, v in first.items() if k != "messages"} == json.loads(json.dumps(ThreadSerializer(thread).data))
    assert [m["content"] for m in first["messages"]] == ["hello\nworld", "hi ✓", ""]
    assert first["messages"][0]["metadata"] == {"m": "1"}
    assert set(first["messages"][0]) == {"id", "object", "threadId", "role", "content", "metadata", "createdAt"}
    assert by_title[""]["messages"] == []
    assert len(export()) == 4  # every organization


def test_export_threads_writes_a_file_and_says_how_many(varied, tmp_path):
    target = tmp_path / "out.jsonl"
    out, _ = run("export_threads", "--org", "acme", "--output", str(target))
    assert out.strip() == f"3 threads exported to {target}."
    assert len(target.read_text(encoding="utf-8").splitlines()) == 3


def test_export_threads_refuses_an_unwritable_file(varied, tmp_path):
    with pytest.raises(CommandError, match="Cannot write"):
        run("export_threads", "--output", str(tmp_path / "missing" / "out.jsonl"))


def comparable(line: dict) -> dict:
    return {k: v for k, v in line.items() if k not in ("organizationId", "updatedAt", "version")}


def test_export_then_import_into_a_fresh_organization_round_trips_exactly(varied, org, tmp_path):
    path = tmp_path / "acme.jsonl"
    run("export_threads", "--org", "acme", "--output", str(path))
    before = sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda line: line["id"])
    org.delete()  # the organization moves: its ids (and history) leave this database
    fresh = make_org("fresh")

    out, err = run("import_threads", str(path), "--org", "fresh")
    assert (out.strip(), err) == ("imported 3, updated 0, unchanged 0, skipped 0", "")
    after = sorted(export("--org", "fresh"), key=lambda line: line["id"])
    assert [comparable(line) for line in after] == [comparable(line) for line in before]
    assert {line["organizationId"] for line in after} == {str(fresh.pk)}
    assert [line["version"] for line in after] == [1 + line["messageCount"] for line in after]
    event = Event.objects.filter(organization=fresh).order_by("id").first()
    assert (event.action, event.actor_type, event.actor_name) == ("created", "command", "import_threads")


def test_a_second_import_changes_nothing(varied, org, tmp_path):
    path = tmp_path / "acme.jsonl"
    run("export_threads", "--org", "acme", "--output", str(path))
    events, versions = Event.objects.count(), list(Thread.objects.values_list("version"))
    for _ in range(2):
        out, err = run("import_threads", str(path), "--org", "acme")
        assert (out.strip(), err) == ("imported 0, updated 0, unchanged 3, skipped 0", "")
    assert Event.objects.count() == events
    assert list(Thread.objects.values_list("version")) == versions


def test_import_merges_changed_fields_and_adds_only_missing_messages(org, tmp_path):
    thread = make_thread(org, title="Old", metadata={"keep": "1"}, messages=[{"role": "user", "content": "first"}])
    (line,) = export("--org", "acme")
    line["title"], line["metadata"] = "New", {"added": "2"}
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    line["messages"].append(
        {
            "id": "6f0c1f0e-5b1a-4c39-9d59-3e4b9b1c0a01",
            "role": "assistant",
            "content": "second",
            "metadata": {},
            "createdAt": later,
        }
    )
    path = tmp_path / "changed.jsonl"
    path.write_text(json.dumps(line) + "\n")

    out, _ = run("import_threads", str(path), "--org", "acme")
    assert out.strip() == "imported 0, updated 1, unchanged 0, skipped 0"
    thread.refresh_from_db()
    assert (thread.title, thread.metadata) == ("New", {"keep": "1", "added": "2"})
    contents = list(Message.objects.filter(thread=thread).order_by("created_at").values_list("content", flat=True))
    assert contents == ["first", "second"]
    assert (thread.message_count, thread.version) == (2, 4)
    assert thread.last_activity_at.isoformat() == later


def test_import_skips_bad_lines_by_number_and_imports_the_rest(org, other_org, tmp_path):
    theirs = make_thread(other_org, title="theirs")
    good = [
        {
            "id": f"00000000-0000-4000-8000-00000000000{i}",
            "title": f"good {i}",
            "messages": [
                {
                    "id": f"10000000-0000-4000-8000-00000000000{i}",
                    "role": "user",
                    "content": "hi",
                    "createdAt": "2026-01-02T03:04:05.123456Z",
                }
            ],
        }
        for i in range(1, 4)
    ]
    bad_rule = {"id": "00000000-0000-4000-8000-000000000009", "metadata": {f"k{i}": "v" for i in range(17)}}
    bad_message = {
        "id": "00000000-0000-4000-8000-000000000008",
        "messages": [
            {
                "id": "20000000-0000-4000-8000-000000000001",
                "role": "robot",
                "content": "x",
                "createdAt": "2026-01-02T03:04:05Z",
            }
        ],
    }
    lines = [
        json.dumps(good[0]),
        "{not json",
        json.dumps(good[1]),
        json.dumps(bad_rule),
        "",
        json.dumps({**ThreadSerializer(theirs).data, "title": "hijack"}, default=str),
        json.dumps(bad_message),
        json.dumps({"title": "no id"}),
        json.dumps({**good[2], "extra": 1}),
        json.dumps(good[2]),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n")

    out, err = run("import_threads", str(path), "--org", "acme")
    assert out.strip() == "imported 3, updated 0, unchanged 0, skipped 7"
    assert err.splitlines() == [
        "line 2: invalid_json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "line 4: metadata_limit_exceeded: Metadata cannot exceed 16 key-value pairs (param: metadata)",
        "line 6: thread_exists: The id belongs to another organization. (param: id)",
        "line 7: invalid_parameters: 'role' must be one of user, assistant, system, tool. (param: messages[0].role)",
        "line 8: invalid_parameters: 'id' must be a UUID string. (param: id)",
        "line 9: invalid_parameters: Unknown field 'extra'. (param: extra)",
        "line 11: invalid_json: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ]
    assert sorted(Thread.objects.filter(organization=org).values_list("title", flat=True)) == [
        "good 1",
        "good 2",
        "good 3",
    ]
    theirs.refresh_from_db()
    assert (theirs.title, theirs.version) == ("theirs", 1)
    assert Message.objects.filter(thread__organization=org).count() == 3
    stored = Message.objects.get(pk="10000000-0000-4000-8000-000000000001")
    assert stored.created_at.isoformat() == "2026-01-02T03:04:05.123456+00:00"


def test_import_refuses_the_id_of_a_deleted_thread_whose_history_is_kept(org, tmp_path):
    from threads.services import thread_delete

    thread = make_thread(org, title="gone")
    (line,) = export("--org", "acme")
    thread_delete(org=org, thread_id=thread.pk, actor=ACTOR)
    path = tmp_path / "gone.jsonl"
    path.write_text(json.dumps(line) + "\n")
    out, err, failure = run_failing("import_threads", str(path), "--org", "acme")
    assert out.strip().endswith("skipped 1")
    assert "thread_exists: The id belonged to a deleted thread." in err
    assert failure == "Nothing was imported: every line was skipped (1). (--allow-empty exits 0 all the same.)"


def run_failing(name: str, *args: str) -> tuple[str, str, str]:
    """A command expected to fail: what it wrote, and its one-line error."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as failure:
        call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue(), str(failure.value)


def test_importing_another_organization_s_export_imports_nothing_and_fails_with_a_hint(varied, tmp_path):
    """The staging copy of the README without --new-ids: every id belongs to acme."""
    path = tmp_path / "acme.jsonl"
    run("export_threads", "--org", "acme", "--output", str(path))
    make_org("acme-staging")

    out, err, failure = run_failing("import_threads", str(path), "--org", "acme-staging")

    assert out.strip() == "imported 0, updated 0, unchanged 0, skipped 3"
    assert err.count("The id belongs to another organization.") == 3
    assert failure == (
        "Nothing was imported: every line was skipped (3). Threads of another organization are copied "
        "with --new-ids. (--allow-empty exits 0 all the same.)"
    )
    out, _ = run("import_threads", str(path), "--org", "acme-staging", "--allow-empty")
    assert out.strip() == "imported 0, updated 0, unchanged 0, skipped 3"
    assert not Thread.objects.filter(organization__slug="acme-staging").exists()


def test_an_empty_file_imports_nothing_and_fails_unless_allowed(org, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")

    _, _, failure = run_failing("import_threads", str(path), "--org", "acme")

    assert failure.startswith("Nothing was imported: the file has no lines.")
    assert run("import_threads", str(path), "--org", "acme", "--allow-empty")[0].strip() == (
        "imported 0, updated 0, unchanged 0, skipped 0"
    )


def test_import_with_new_ids_copies_another_organization_s_threads_with_their_messages(varied, org, tmp_path):
    path = tmp_path / "acme.jsonl"
    run("export_threads", "--org", "acme", "--output", str(path))
    source = {line["id"]: line for line in map(json.loads, path.read_text().splitlines())}
    acme_events = Event.objects.filter(organization=org).count()
    staging = make_org("acme-staging")

    out, err = run("import_threads", str(path), "--org", "acme-staging", "--new-ids")

    assert (out.strip(), err) == ("imported 3, updated 0, unchanged 0, skipped 0", "")
    copies = export("--org", "acme-staging")
    assert not {c["id"] for c in copies} & set(source)  # new thread ids
    message_ids = {m["id"] for line in source.values() for m in line["messages"]}
    assert not {m["id"] for c in copies for m in c["messages"]} & message_ids

    def content(line):  # everything but the ids, the organization, the version and the update time
        return {
            **comparable(line),
            "id": None,
            "messages": [{k: v for k, v in m.items() if k not in ("id", "threadId")} for m in line["messages"]],
        }

    assert sorted(map(content, copies), key=json.dumps) == sorted(map(content, source.values()), key=json.dumps)
    for copy in copies:
        thread = Thread.objects.get(pk=copy["id"])
        assert thread.organization == staging and {m["threadId"] for m in copy["messages"]} <= {copy["id"]}
        # The copy's own history, consistent with it: created, then one event per message.
        events = events_of(thread)
        assert [e.action for e in events] == ["created"] + ["message_added"] * thread.message_count
        assert [e.version for e in events] == list(range(1, thread.version + 1))
        assert {e.organization_id for e in events} == {staging.pk}
    assert Event.objects.filter(organization=org).count() == acme_events  # the originals untouched
    assert Thread.objects.filter(organization=org).count() == 3

    out, _ = run("import_threads", str(path), "--org", "acme-staging", "--new-ids")
    assert out.strip() == "imported 0, updated 0, unchanged 3, skipped 0"  # the same copies again
    assert Thread.objects.filter(organization=staging).count() == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/file.jsonl", "--org", "acme"], "Cannot read '/no/such/file.jsonl'"),
        (["x.jsonl", "--org", "nope"], "No organization 'nope'"),
        (["x.jsonl"], "the following arguments are required: --org"),
    ],
)
def test_import_threads_refuses_bad_input(org, args, message):
    with pytest.raises(CommandError, match=message):
        run("import_threads", *args)


# --- seed_demo and the organization commands -------------------------------------------------


def test_seed_demo_makes_an_organization_a_user_a_key_and_consistent_threads(db):
    out, _ = run("seed_demo", "--org", "demo", "--threads", "40")
    raw = out.splitlines()[-1]
    assert raw.startswith("tk_") and ApiKey.objects.filter(key_hash=hash_api_key(raw)).exists()
    assert "user 'demo-admin'" in out
    org = Organization.objects.get(slug="demo")
    threads = Thread.objects.filter(organization=org)
    assert threads.count() == 40
    totals = threads.aggregate(messages=Sum("message_count"), versions=Sum("version"))
    assert totals["messages"] == Message.objects.filter(thread__organization=org).count()
    assert totals["versions"] == Event.objects.filter(organization=org).count()
    for thread in threads[:10]:
        events = events_of(thread)
        assert [e.version for e in events] == list(range(1, thread.version + 1))
        assert events[0].action == "created" and events[0].actor_type == "command"
        assert events[0].changes["title"] == {"from": "", "to": thread.title}
        if thread.message_count:
            last = Message.objects.filter(thread=thread).order_by("-created_at").first()
            assert thread.last_activity_at == last.created_at


def test_seed_demo_adds_threads_to_an_existing_organization_only_when_asked(db):
    run("seed_demo", "--threads", "3")
    with pytest.raises(CommandError, match="Organization 'demo' already exists"):
        run("seed_demo", "--threads", "3")
    out, _ = run("seed_demo", "--threads", "5", "--existing")
    assert out.splitlines()[-1].startswith("tk_") and "password" not in out
    assert Thread.objects.count() == 8


def test_seed_demo_first_run_creates_nothing_when_an_organization_exists(org):
    out, err = run("seed_demo", "--first-run")
    assert Thread.objects.count() == 0 and Organization.objects.count() == 1 and err == ""
    assert "manage.py create_api_key --org acme" in out and "tk_" not in out


def test_seed_demo_refuses_a_negative_count(db):
    with pytest.raises(CommandError, match="--threads must be 0 or more"):
        run("seed_demo", "--threads", "-1")


def test_create_org_user_and_api_key_from_the_shell_helpers(db):
    out, _ = run("create_org", "initech", "--name", "Initech")
    assert Organization.objects.get(slug="initech").pk.hex == out.strip().replace("-", "")
    out, _ = run("create_user", "peter", "--org", "initech", "--role", "viewer")
    assert "Password: " in out
    out, _ = run("create_api_key", "--org", "initech", "--scope", "read")
    key = ApiKey.objects.get(key_hash=hash_api_key(out.splitlines()[-1]))
    assert (key.scope, key.organization.slug) == ("read", "initech")
    with pytest.raises(CommandError, match="already exists"):
        run("create_org", "initech")
    with pytest.raises(CommandError, match="No organization 'nope'"):
        run("create_api_key", "--org", "nope")


def test_import_adds_a_message_listed_twice_in_a_line_once(org, tmp_path):
    message = {
        "id": "30000000-0000-4000-8000-000000000001",
        "role": "user",
        "content": "once",
        "createdAt": "2026-03-04T05:06:07Z",
    }
    line = {"id": "00000000-0000-4000-8000-0000000000aa", "messages": [message, message]}
    path = tmp_path / "twice.jsonl"
    path.write_text(json.dumps(line) + "\n")
    out, err = run("import_threads", str(path), "--org", "acme")
    assert (out.strip(), err) == ("imported 1, updated 0, unchanged 0, skipped 0", "")
    thread = Thread.objects.get(pk=line["id"])
    assert (thread.message_count, Message.objects.filter(thread=thread).count()) == (1, 1)


def test_an_imported_time_with_another_offset_is_written_in_utc_in_the_history(org, tmp_path):
    message = {
        "id": "30000000-0000-4000-8000-000000000002",
        "role": "user",
        "content": "hi",
        "createdAt": "2026-03-04T07:06:07+02:00",
    }
    line = {"id": "00000000-0000-4000-8000-0000000000ab", "messages": [message]}
    path = tmp_path / "offset.jsonl"
    path.write_text(json.dumps(line) + "\n")
    run("import_threads", str(path), "--org", "acme")
    event = Event.objects.get(thread_id=line["id"], action=Event.Action.MESSAGE_ADDED)
    assert event.changes["lastActivityAt"] == {"from": None, "to": "2026-03-04T05:06:07Z"}
