"""PostgreSQL: the merge PATCH of one thread as a single statement, so that a hot row is locked
for one statement instead of a Python turn and three round trips.

A statement is generated for each *shape* of patch (which fields it sets, which maps it merges or
clears, whether it replaces or edits the tags) from merge.py's tables (``WRITABLE``,
``STATE_LIMITS``, the tag limits), and names the rule a patch broke as merge.py does
(``merge.rule_error``), so the rules and their messages have one definition;
tests/test_merge_sql.py runs random patches and stored states through both and requires the same
state, diff and error. Only the fields a patch names appear in its statement: a PATCH of one
metadata key reads, checks, diffs and writes that map and nothing else (the statement of every
field at once cost PostgreSQL a third more CPU per PATCH than this one, in bench/ measurements).

The patch is parsed and normalised in Python first (``merge.parse_patch``, which checks every entry
and tag it names); the statement applies it to the locked row, checks ``If-Match`` and the limits
the merge can break (``merge.patch_error``: a touched map's key count, the tag count), builds the
history diff and, when something changed, writes the row and the event.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from django.db import connection

from . import merge, selectors
from .errors import not_found
from .models import Event, Thread

_COLUMNS = {name: Thread._meta.get_field(attr).column for name, attr in merge.WRITABLE.items()}
# The statement names a map by its column: the rule it reports names the field (they are equal).
_MAPS = {_COLUMNS[field]: field for field in merge.STATE_LIMITS}
assert all(column == field for column, field in _MAPS.items())
_TAGS = _COLUMNS["tags"]
# The SQL type of each column that a patch replaces with a parameter (maps and tags are jsonb).
_CASTS = {
    column: "boolean" if name in merge.BOOLEAN_FIELDS else "text"
    for name, column in _COLUMNS.items()
    if column not in _MAPS and column != _TAGS
}
_RETURNED = ", ".join(f"r.{field.column}" for field in Thread._meta.concrete_fields)

# The tags after ``addTags`` / ``removeTags`` (merge.apply_patch): the list's first occurrences in
# order, then the added ones, without the removed ones. {base}: the list they apply to.
_TAG_OPS = (
    "(SELECT coalesce(jsonb_agg(e ORDER BY i), '[]') FROM (SELECT DISTINCT ON (e) e, i"
    " FROM jsonb_array_elements({base} || %(add_tags)s::jsonb) WITH ORDINALITY tg (e, i) ORDER BY e, i) q"
    " WHERE NOT %(rm_tags)s::jsonb @> e)"
)


def _shape(patch: merge.Patch) -> tuple:
    """What the statement depends on: the columns set, each map merged (False) or cleared (True),
    the tags replaced and/or edited."""
    columns = tuple(_COLUMNS[name] for name in merge.WRITABLE if name in patch and _COLUMNS[name] in _CASTS)
    maps = tuple((column, patch[field] is None) for column, field in _MAPS.items() if field in patch)
    return columns, maps, "tags" in patch, any(op in patch for op in merge.TAG_OPS)


@functools.lru_cache(maxsize=256)
def statement(shape: tuple, render: str | None = None) -> str:
    """The statement of one shape of patch; with ``render`` (an SQL expression over the columns of
    the row as stored after it, named as ``"threads_thread"."title"``), its answer is that
    expression's value instead of the row's columns.

    o: the row, locked (a); n (materialized: each value computed once): it and each touched
    column's new value (n_<column>); c: the first broken rule (err: ``version``, the map's field,
    ``tags``) and the history diff (g), both over the touched columns only; u: the row written
    when something changed and nothing is broken; e: its event. The answer: err, the version
    before, and the row as stored after."""
    columns, maps, tags_set, tags_edited = shape
    new = {column: f"%(v_{column})s::{_CASTS[column]}" for column in columns}
    for column, cleared in maps:
        patch = f"%(p_{column})s::jsonb"
        removed = f"ARRAY(SELECT key FROM jsonb_each({patch}) WHERE value = 'null')"
        merged = f"((a).{column} || jsonb_strip_nulls({patch})) - {removed}"
        new[column] = "'{}'::jsonb" if cleared else merged
    if tags_set or tags_edited:
        base = "%(v_tags)s::jsonb" if tags_set else f"(a).{_TAGS}"
        new[_TAGS] = _TAG_OPS.format(base=base) if tags_edited else base
    rules = ["WHEN %(if_match)s::integer <> (a).version THEN 'version'"]
    rules += [
        f"WHEN (SELECT count(*) FROM jsonb_object_keys(n_{column})) > {merge.STATE_LIMITS[_MAPS[column]].keys_max}"
        f" THEN '{_MAPS[column]}'"
        for column, _ in maps
    ]
    if _TAGS in new:
        rules.append(f"WHEN jsonb_array_length(n_{_TAGS}) > {merge.TAGS_MAX} THEN 'tags'")
    changes, scalars = ["'{}'::jsonb"], []
    for name, column in _COLUMNS.items():
        if column not in new:
            continue
        if column in _MAPS:
            named = f"(a).{column}" if dict(maps)[column] else f"%(p_{column})s::jsonb"  # cleared: every old key
            keys = f"jsonb_object_keys({named})"
            # As merge.diff: the map changed, then each key whose value did (a stored null as none).
            changes.append(
                f"CASE WHEN (a).{column} IS DISTINCT FROM n_{column} THEN jsonb_build_object('{name}', coalesce(("
                f"SELECT jsonb_object_agg(q, jsonb_build_object('from', (a).{column} -> q, 'to', n_{column} -> q))"
                f" FROM {keys} q WHERE coalesce((a).{column} -> q, 'null') <> coalesce(n_{column} -> q, 'null')),"
                f" '{{}}')) ELSE '{{}}' END"
            )
        else:
            scalars.append(f"('{name}', to_jsonb((a).{column}), to_jsonb(n_{column}))")
    if scalars:
        changes.append(
            "coalesce((SELECT jsonb_object_agg(f, jsonb_build_object('from', x, 'to', y)) FROM (VALUES"
            f" {', '.join(scalars)}) v (f, x, y) WHERE x IS DISTINCT FROM y), '{{}}')"
        )
    thread, event = Thread._meta.db_table, Event._meta.db_table
    # The row as stored after: r, or named as its table for ``render``'s column names.
    answer, alias = (_RETURNED, "r") if render is None else (f"{thread}.version, {render}", thread)
    sql = f"""
WITH o AS (SELECT t a FROM {thread} t WHERE id = %(id)s AND organization_id = %(org)s FOR UPDATE),
n AS MATERIALIZED (SELECT a{"".join(f", {value} n_{column}" for column, value in new.items())} FROM o),
c AS (SELECT n.*, CASE {" ".join(rules)} END err, {" || ".join(changes)} g FROM n),
u AS (UPDATE {thread} t SET {"".join(f"{column} = n_{column}, " for column in new)}version = t.version + 1,
  updated_at = %(now)s FROM c WHERE t.id = (a).id AND err IS NULL AND g <> '{{}}' RETURNING t),
e AS (INSERT INTO {event} (organization_id, thread_id, action, version, actor_type, actor_id, actor_name,
  changes, created_at) SELECT (t).organization_id, (t).id, 'updated', (t).version, %(actor_type)s,
  %(actor_id)s, %(actor_name)s, g, %(now)s FROM u, c)
SELECT err, (c.a).version, {answer} FROM c LEFT JOIN u ON true, LATERAL (SELECT (coalesce(u.t, c.a)).*) {alias}
"""
    return " ".join(sql.split())


def _params(org_id: Any, pk: uuid.UUID, patch: merge.Patch, if_match: int | None) -> dict[str, Any]:
    """The parsed patch as the statement's parameters: each replaced column's value, each merged
    map's patch (jsonb: null removes a key), the tags and their edits (jsonb)."""
    json = connection.ops.adapt_json_value
    params: dict[str, Any] = {"id": pk, "org": org_id, "if_match": if_match}
    for name, value in patch.items():
        column = _COLUMNS.get(name)
        if column in _CASTS:
            params[f"v_{column}"] = value
        elif column in _MAPS and value is not None:
            params[f"p_{column}"] = json(value, None)
    if "tags" in patch:
        params["v_tags"] = json(patch["tags"], None)
    if any(op in patch for op in merge.TAG_OPS):
        params["add_tags"] = json(patch.get("addTags", []), None)
        params["rm_tags"] = json(patch.get("removeTags", []), None)
    return params


def _run(
    org_id: Any,
    thread_id: Any,
    patch: merge.Patch,
    if_match: int | None,
    actor: dict[str, str],
    now: datetime,
    render: str | None,
) -> tuple[int, list]:
    """Run the patch's statement: the version before it and the answer's other values, or the
    error of the rule it broke (having written nothing)."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        raise not_found() from None
    with connection.cursor() as cursor:
        sql = statement(_shape(patch), render)
        cursor.execute(sql, {**_params(org_id, pk, patch, if_match), **actor, "now": now})
        row = cursor.fetchone()
    if row is None:
        raise not_found()
    broken, version, *values = row
    if broken == "version":
        merge.check_version(version, if_match)
    if broken is not None:
        raise merge.rule_error(broken, "tags" if broken == "tags" else "keys").exception()
    return version, values


def update(
    org_id: Any, thread_id: Any, patch: merge.Patch, if_match: int | None, actor: dict[str, str], now: datetime
) -> tuple[Thread, bool]:
    """Apply a parsed patch to the organization's thread in one statement: the thread as stored
    after it and whether it changed (then its version is one higher and its ``updated`` event,
    with ``actor``'s fields, is written). Raises ``thread_not_found``, ``version_mismatch`` or the
    error of the first rule the merge broke, having written nothing."""
    version, values = _run(org_id, thread_id, patch, if_match, actor, now, None)
    thread = selectors.thread_from_row(values)
    return thread, thread.version != version


def update_rendered(
    org_id: Any,
    thread_id: Any,
    patch: merge.Patch,
    if_match: int | None,
    actor: dict[str, str],
    now: datetime,
    render: str,
) -> tuple[int, Any]:
    """``update``, answering the thread's version after it and the value of ``render`` over the row
    as stored (no model built: the door's own rendering, in the same statement)."""
    return tuple(_run(org_id, thread_id, patch, if_match, actor, now, render)[1])
