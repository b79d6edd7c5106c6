"""PostgreSQL: the merge PATCH of one thread as a single statement, so that a hot row is locked
for one statement instead of a Python turn and three round trips.

The statement is generated once from merge.py's tables (``WRITABLE``, ``STATE_LIMITS``, the tag
limits) and answers with the rule merge.py names (``merge.rule_error``), so the rules and their
messages have one definition; tests/test_merge_sql.py runs random patches and stored states through
both and requires the same state, diff and error. The patch is parsed and normalised in Python
first (``merge.parse_patch``); the statement applies it to the locked row, checks ``If-Match`` and
the stored-state limits, builds the history diff and, when something changed, writes the row and
the event.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from string import Template
from typing import Any

from django.db import connection

from . import merge, selectors
from .errors import not_found
from .models import Event, Thread

_COLUMNS = {name: Thread._meta.get_field(attr).column for name, attr in merge.WRITABLE.items()}
# The statement names a map by its column: the rule it reports names the field (they are equal).
_MAPS = {_COLUMNS[field]: field for field in merge.STATE_LIMITS}
assert all(column == field for column, field in _MAPS.items())

# p: the patch; l: the map limits; o: the row, locked, and as jsonb (x); n: its old (a) and new (b)
# values (merge.apply_patch); c: both as jsonb; k: the first broken rule, If-Match first, then in
# merge.state_error's order; d: the history diff (merge.diff); u: the row written when something
# changed and nothing is broken; e: its event. No percent sign but psycopg's placeholders.
_TEMPLATE = Template("""
WITH p AS (SELECT %(s)s::jsonb s, %(maps)s::jsonb m, %(add)s::jsonb ad, %(rm)s::jsonb rm),
l (f, n, keys, vmax, imax) AS (VALUES $limits),
o AS (SELECT t, to_jsonb(t) x FROM $thread t WHERE id = %(id)s AND organization_id = %(org)s FOR UPDATE),
n AS (SELECT o.t a, x, jsonb_populate_record(o.t, p.s || (SELECT jsonb_object_agg(f,
  CASE WHEN p.m->f IS NULL THEN x->f WHEN p.m->f = 'null' THEN '{}'
  ELSE (x->f || jsonb_strip_nulls(p.m->f)) - ARRAY(SELECT key FROM jsonb_each(p.m->f) WHERE value = 'null')
  END) FROM l) || jsonb_build_object('tags', CASE WHEN p.ad IS NULL THEN coalesce(p.s->'tags', x->'tags') ELSE (
    SELECT coalesce(jsonb_agg(e ORDER BY i), '[]') FROM (SELECT DISTINCT ON (e) e, i
    FROM jsonb_array_elements(coalesce(p.s->'tags', x->'tags') || p.ad) WITH ORDINALITY tg (e, i)
    ORDER BY e, i) tags WHERE NOT p.rm @> e) END)) b FROM o, p),
c AS (SELECT a, x, to_jsonb(b) y FROM n),
k AS (SELECT rule, field, key FROM c, LATERAL (
  SELECT 0, 0, '', 'version', '' WHERE %(if_match)s <> (a).version
  UNION ALL SELECT l.n, 0, '', 'keys', f FROM l WHERE (SELECT count(*) FROM jsonb_object_keys(y->f)) > keys
  UNION ALL SELECT l.n, 1, key, CASE WHEN length(key) NOT BETWEEN 1 AND $key_max THEN 'key'
    WHEN jsonb_typeof(value) = 'string' THEN CASE WHEN length(value #>> '{}') > vmax THEN 'value' END
    WHEN jsonb_typeof(value) <> 'array' OR imax IS NULL THEN 'type'
    WHEN jsonb_array_length(value) > imax THEN 'list'
    ELSE (SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN 'value' ELSE 'item' END
      FROM jsonb_array_elements(value) WITH ORDINALITY q(v, i)
      WHERE jsonb_typeof(v) <> 'string' OR length(v #>> '{}') > vmax ORDER BY i LIMIT 1) END, f
    FROM l, jsonb_each(y->f)
  UNION ALL SELECT 9, 0, '', 'tags', 'tags' WHERE jsonb_array_length(y->'tags') > $tags_max
  UNION ALL SELECT 9, 1, '', 'tag', 'tags' FROM jsonb_array_elements(y->'tags') v
    WHERE jsonb_typeof(v) <> 'string' OR length(v #>> '{}') NOT BETWEEN 1 AND $tag_max
  ) z (o1, o2, key, rule, field) WHERE rule IS NOT NULL ORDER BY o1, o2, key COLLATE "C" LIMIT 1),
d AS (SELECT coalesce(jsonb_object_agg(name, CASE WHEN col IN (SELECT f FROM l) THEN (
    SELECT coalesce(jsonb_object_agg(q, jsonb_build_object('from', x->col->q, 'to', y->col->q)), '{}')
    FROM (SELECT jsonb_object_keys(x->col) UNION SELECT jsonb_object_keys(y->col)) q (q)
    WHERE coalesce(x->col->q, 'null') <> coalesce(y->col->q, 'null'))
  ELSE jsonb_build_object('from', x->col, 'to', y->col) END), '{}') g
  FROM c, (VALUES $fields) w (name, col) WHERE x->col IS DISTINCT FROM y->col),
u AS (UPDATE $thread t SET $sets, version = t.version + 1, updated_at = %(now)s FROM n, d
  WHERE t.id = (a).id AND g <> '{}' AND NOT EXISTS (SELECT FROM k) RETURNING t),
e AS (INSERT INTO $event (organization_id, thread_id, action, version, actor_type, actor_id,
  actor_name, changes, created_at) SELECT (t).organization_id, (t).id, 'updated', (t).version,
  %(actor_type)s, %(actor_id)s, %(actor_name)s, g, %(now)s FROM u, d)
SELECT rule, field, key, (o.t).version, $columns
FROM o LEFT JOIN k ON true LEFT JOIN u ON true, LATERAL (SELECT (coalesce(u.t, o.t)).*) r
""")


def _statement() -> str:
    sql = _TEMPLATE.substitute(
        thread=Thread._meta.db_table,
        event=Event._meta.db_table,
        limits=", ".join(
            f"('{field}', {n}, {rules.keys_max}, {rules.value_max}, {rules.items_max or 'NULL'})"
            for n, (field, rules) in enumerate(merge.STATE_LIMITS.items(), start=1)
        ),
        key_max=merge.KEY_MAX,
        tags_max=merge.TAGS_MAX,
        tag_max=merge.TAG_MAX,
        fields=", ".join(f"('{name}', '{column}')" for name, column in _COLUMNS.items()),
        sets=", ".join(f"{column} = (b).{column}" for column in _COLUMNS.values()),
        columns=", ".join(field.column for field in Thread._meta.concrete_fields),
    )
    return " ".join(sql.split())


STATEMENT = _statement()


def _params(org_id: Any, pk: uuid.UUID, patch: merge.Patch, if_match: int | None) -> dict[str, Any]:
    """The parsed patch as jsonb: the map patches by column (a cleared map: null), the other fields
    (``tags`` included) by column for ``jsonb_populate_record``, the tag operations (NULL: none)."""
    json = connection.ops.adapt_json_value
    fields = {_COLUMNS[name]: value for name, value in patch.items() if name in _COLUMNS}
    tag_ops = "addTags" in patch or "removeTags" in patch
    return {
        "id": pk,
        "org": org_id,
        "s": json({column: value for column, value in fields.items() if column not in _MAPS}, None),
        "maps": json({column: value for column, value in fields.items() if column in _MAPS}, None),
        "add": json(patch.get("addTags", []), None) if tag_ops else None,
        "rm": json(patch.get("removeTags", []), None),
        "if_match": if_match,
    }


def update(
    org_id: Any, thread_id: Any, patch: merge.Patch, if_match: int | None, actor: dict[str, str], now: datetime
) -> tuple[Thread, bool]:
    """Apply a parsed patch to the organization's thread in one statement: the thread as stored
    after it and whether it changed (then its version is one higher and its ``updated`` event,
    with ``actor``'s fields, is written). Raises ``thread_not_found``, ``version_mismatch`` or the
    error of the first stored-state rule the merged thread breaks, having written nothing."""
    try:
        pk = uuid.UUID(str(thread_id))
    except ValueError:
        raise not_found() from None
    with connection.cursor() as cursor:
        cursor.execute(STATEMENT, {**_params(org_id, pk, patch, if_match), **actor, "now": now})
        row = cursor.fetchone()
    if row is None:
        raise not_found()
    rule, field, key, version, *values = row
    if rule == "version":
        merge.check_version(version, if_match)
    if rule is not None:
        raise merge.rule_error(field, rule, key).exception()
    thread = selectors.thread_from_row(values)
    return thread, thread.version != version
