"""PostgreSQL's one-statement PATCH (threads/merge_sql.py) against merge.py's rules.

The differential test runs random stored states (within, at and just past every limit, now and
then with a value of the wrong type) and random patches through ``merge.check_version`` +
``merge.plan`` and through the statement on a real row, and requires the same stored state, the
same history diff and the same error (code, param and message) every time. Seeded: a failure is
reproduced by running the test again (MERGE_SQL_SEED, MERGE_SQL_EXAMPLES change the run).
"""

from __future__ import annotations

import os
import re
import threading

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from threads import merge, merge_sql
from threads.errors import ThreadError
from threads.models import Event, Thread
from threads.services import state_of, thread_update

from .conftest import ACTOR

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement PATCH is PostgreSQL's"),
]

EXAMPLES = int(os.environ.get("MERGE_SQL_EXAMPLES", "2000"))
SEED = int(os.environ.get("MERGE_SQL_SEED", "20260412"))

# --- strategies ------------------------------------------------------------------------------

CHARS = st.characters(codec="utf-8", exclude_characters="\x00")  # PostgreSQL stores no U+0000
# Few distinct keys and values, so that patches hit stored keys and equal values; characters of
# one, two and four UTF-8 bytes, and keys whose order differs between code points and collations.
KEYS = st.one_of(
    st.sampled_from(["a", "b", "B", "Z", "é", "ä", "😀", "k" * merge.KEY_MAX]),
    st.text(CHARS, min_size=1, max_size=merge.KEY_MAX),
)
BAD_KEYS = st.sampled_from(["", "k" * (merge.KEY_MAX + 1)])


def rarely(strategy, otherwise=None):
    """``strategy`` about one time in five, else ``otherwise``."""
    otherwise = st.none() if otherwise is None else otherwise
    return st.sampled_from([False] * 4 + [True]).flatmap(lambda draw: strategy if draw else otherwise)


def strings(*lengths: int):
    repeated = st.builds(lambda c, n: c * n, st.sampled_from("aé😀"), st.sampled_from(lengths))
    return st.one_of(repeated, st.text(CHARS, max_size=3))


def count(most: int):
    """A count of filler entries: mostly 0 to 3, one time in nine at or just past ``most``."""
    return st.sampled_from([*range(4)] * 6 + [most - 1, most, most + 1])


def values(field: str):
    """Values within the map's limits, as a patch may set them."""
    limits = merge.STATE_LIMITS[field]
    string = strings(0, 1, 2, limits.value_max - 1, limits.value_max)
    if not limits.items_max:
        return string
    return st.one_of(string, st.lists(strings(0, 1, limits.value_max), max_size=3), st.just(["v"] * limits.items_max))


def bad_values(field: str):
    """Values past the map's limits or of another type: a stored state no patch can make."""
    limits = merge.STATE_LIMITS[field]
    return st.one_of(
        strings(limits.value_max + 1),
        st.just(["v"] * ((limits.items_max or 1) + 1)),
        st.lists(st.one_of(strings(1, limits.value_max + 1), st.integers(0, 2)), min_size=1, max_size=3),
        st.integers(-2, 2),
        st.booleans(),
        st.none(),
        st.just({"nested": "x"}),
    )


def stored_map(field: str):
    limits = merge.STATE_LIMITS[field]
    return st.builds(
        lambda fill, entries, bad: {**{f"f{i}": "v" for i in range(fill)}, **entries, **(bad or {})},
        count(limits.keys_max),
        st.dictionaries(KEYS, values(field), max_size=4),
        rarely(
            st.dictionaries(
                st.one_of(KEYS, BAD_KEYS), st.one_of(values(field), bad_values(field)), min_size=1, max_size=2
            )
        ),
    )


TAGS = ["a", "b", "c", "x" * merge.TAG_MAX, "é", "ü", "😀"]
stored_tags = st.builds(
    lambda fill, tags, bad: [f"t{i}" for i in range(fill)] + tags + (bad or []),
    count(merge.TAGS_MAX),
    st.lists(st.sampled_from(TAGS), max_size=4),  # duplicates too
    rarely(st.lists(st.sampled_from(["", "x" * (merge.TAG_MAX + 1), 7]), min_size=1, max_size=2)),
)
ids = st.one_of(st.none(), st.sampled_from(["p", "q"]), st.text(CHARS, max_size=merge.ID_MAX))
titles = st.one_of(st.sampled_from(["", "Hello"]), st.text(CHARS, max_size=merge.TITLE_MAX))
stored = st.fixed_dictionaries(
    {
        "title": titles,
        "metadata": stored_map("metadata"),
        "variables": stored_map("variables"),
        "tags": stored_tags,
        **{attr: st.booleans() for attr in ("is_archived", "is_active", "visible_in_ui", "is_pinned")},
        **{attr: ids for attr in ("project_id", "assistant_id", "user_id")},
    }
)

tag_list = st.lists(st.sampled_from([*TAGS, " A ", "B", "C"]), max_size=4)
PATCH_FIELDS = {
    "title": st.one_of(st.none(), titles),
    **{
        field: rarely(st.none(), otherwise=st.dictionaries(KEYS, st.one_of(st.none(), values(field)), max_size=5))
        for field in merge.STATE_LIMITS
    },
    "tags": st.one_of(st.none(), tag_list),
    "addTags": tag_list,
    "removeTags": tag_list,
    **{name: st.booleans() for name in merge.BOOLEAN_FIELDS},
    **{name: ids for name in merge.ID_FIELDS},
}
# At least one field (the empty patch is one case, tested elsewhere), often several.
patches = st.sampled_from(sorted(PATCH_FIELDS)).flatmap(
    lambda name: st.fixed_dictionaries(
        {name: PATCH_FIELDS[name]}, optional={other: PATCH_FIELDS[other] for other in PATCH_FIELDS if other != name}
    )
)
if_match_offsets = st.sampled_from([None, None, None, 0, 0, 1])  # If-Match: absent, current, stale


# --- the two ways --------------------------------------------------------------------------


def by_python(state, version, patch, if_match):
    try:
        merge.check_version(version, if_match)
        new, changes = merge.plan(state, merge.parse_patch(patch))
    except ThreadError as error:
        return "error", error.code, error.param, error.message
    return "ok", new, changes


def by_statement(org, thread, state, version, patch, if_match):
    Thread.objects.filter(pk=thread.pk).update(version=version, **state)  # past the limits too
    try:
        updated = thread_update(org=org, thread_id=thread.pk, patch=patch, actor=ACTOR, if_match=if_match)
    except ThreadError as error:
        return "error", error.code, error.param, error.message
    events = list(Event.objects.filter(thread_id=thread.pk, version__gt=version))
    if updated.version == version:
        assert events == []
        return "ok", state_of(updated), {}
    assert updated.version == version + 1 and [e.version for e in events] == [version + 1]
    return "ok", state_of(updated), events[0].changes


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(state=stored, version=st.integers(1, 3), patch=patches, offset=if_match_offsets)
def test_the_statement_and_merge_py_agree_on_state_diff_and_error(org, thread, state, version, patch, offset):
    if_match = None if offset is None else version - offset
    with transaction.atomic():  # each example starts from the same row, without the last one's event
        got = by_statement(org, thread, state, version, patch, if_match)
        transaction.set_rollback(True)
    assert got == by_python(state, version, patch, if_match)
    event(got[1] if got[0] == "error" else "changed" if got[2] else "unchanged")


# --- the statement itself ------------------------------------------------------------------


def test_every_statement_stays_within_psycopgs_query_cache():
    """psycopg caches the parsing of a query of at most 4,096 bytes and 50 parameters: the
    statement of the largest patch (every field, both maps, the tags replaced and edited) too."""
    from psycopg import _queries

    everything = merge.parse_patch(
        {
            **{name: "x" for name in ("title", *merge.ID_FIELDS)},
            **{name: True for name in merge.BOOLEAN_FIELDS},
            "metadata": {"a": "1"},
            "variables": {"b": None},
            "tags": ["t"],
            "addTags": ["u"],
            "removeTags": ["t"],
        }
    )
    for patch in (everything, {**everything, "metadata": None, "variables": None}, {}):
        sql = merge_sql.statement(merge_sql._shape(patch))
        assert len(sql.encode()) <= _queries.MAX_CACHED_STATEMENT_LENGTH == 4096
        assert len(set(re.findall(r"%\((\w+)\)s", sql))) <= _queries.MAX_CACHED_STATEMENT_PARAMS
        assert "txid" not in sql  # the event's trigger fills it


def test_a_patch_of_one_map_touches_nothing_else():
    sql = merge_sql.statement(merge_sql._shape(merge.parse_patch({"metadata": {"a": "1"}})))
    work = sql[: sql.index(" SELECT err,")]  # the answer then returns the whole row
    assert "metadata" in work and not any(column in work for column in ("variables", "tags", "title", "is_archived"))


def test_a_patch_is_one_statement_without_begin_or_commit(org, thread):
    with CaptureQueriesContext(connection) as queries:
        thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"b": "2"}}, actor=ACTOR, if_match=1)
    assert len(queries.captured_queries) == 1, queries.captured_queries
    thread.refresh_from_db()
    assert thread.metadata == {"a": "1", "b": "2"} and thread.version == 2


def test_errors_from_the_statement_are_the_services_errors(org, other_org, thread):
    with pytest.raises(ThreadError) as info:
        thread_update(org=org, thread_id=thread.pk, patch={"title": "x"}, actor=ACTOR, if_match=7)
    assert (info.value.code, info.value.param, info.value.message) == (
        "version_mismatch",
        "If-Match",
        "The thread is at version 1, not 7.",
    )
    too_many = {f"k{i}": "v" for i in range(merge.METADATA_KEYS_MAX)}
    with pytest.raises(ThreadError) as info:
        thread_update(org=org, thread_id=thread.pk, patch={"metadata": too_many}, actor=ACTOR)
    assert info.value.envelope()["error"] == {
        "type": "validation_error",
        "code": "metadata_limit_exceeded",
        "message": "Metadata cannot exceed 16 key-value pairs",
        "param": "metadata",
    }
    for thread_id, who in ((thread.pk, other_org), ("not-a-uuid", org)):
        with pytest.raises(ThreadError) as info:
            thread_update(org=who, thread_id=thread_id, patch={"title": "x"}, actor=ACTOR)
        assert info.value.code == "thread_not_found"
    thread.refresh_from_db()
    assert thread.version == 1 and Event.objects.filter(thread_id=thread.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_patch_that_waited_for_the_row_lock_merges_into_the_row_as_committed(org, thread):
    """The statement's snapshot predates the other writer's commit: it must still start from the
    row that writer committed (the lock's re-read), not from the row in its snapshot."""
    settings_dict = connections["default"].settings_dict
    other = psycopg.connect(
        host=settings_dict["HOST"],
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        dbname=settings_dict["NAME"],
        password=settings_dict["PASSWORD"] or None,
    )
    with other.cursor() as cursor:  # a writer holding the row lock, as the service itself writes
        cursor.execute("SELECT 1 FROM threads_thread WHERE id = %s FOR UPDATE", [thread.pk])
        cursor.execute(
            'UPDATE threads_thread SET metadata = metadata || \'{"other": "1"}\', version = 2 WHERE id = %s',
            [thread.pk],
        )
    done = []

    def patch():
        try:
            done.append(thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"b": "2"}}, actor=ACTOR))
        finally:
            connection.close()

    waiter = threading.Thread(target=patch)
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive()  # waiting for the lock
    other.commit()
    other.close()
    waiter.join(10)
    assert done and done[0].metadata == {"a": "1", "other": "1", "b": "2"} and done[0].version == 3
    assert Event.objects.get(thread_id=thread.pk, version=3).changes == {"metadata": {"b": {"from": None, "to": "2"}}}
