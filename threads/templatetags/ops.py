"""Small display filters for the operator pages and the admin's history table."""

from __future__ import annotations

import json
from datetime import datetime

from django import template
from django.utils import formats, timezone

from ..counts import RowCount

register = template.Library()

SUMMARY_KEYS = 3
SUMMARY_CHARS = 24


def _short(value, limit: int = 60) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def change_lines(changes: dict) -> list[str]:
    """An event's ``changes`` as lines: ``title: "a" → "b"``, ``metadata.k: "1" → (none)``."""
    lines = []
    for field, change in (changes or {}).items():
        if isinstance(change, dict) and set(change) == {"from", "to"}:
            pairs = [(field, change)]
        else:
            pairs = [(f"{field}.{key}", item) for key, item in (change or {}).items()]
        for name, item in pairs:
            old, new = (_value(name, item[end]) for end in ("from", "to"))
            lines.append(f"{name}: {old} → {new}")
    return lines


TIME_FIELDS = frozenset({"lastActivityAt", "createdAt", "updatedAt"})


def _value(name: str, value) -> str:
    """One side of a change: a time in the pages' one format, anything else as JSON, shortened."""
    if value is None:
        return "(none)"
    if name in TIME_FIELDS and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return _short(value)
        return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")
    return _short(value)


@register.filter
def metadata_summary(metadata: dict) -> str:
    """``a=1, b=2, c=3 +2 more`` — a glance at a thread's metadata in a list row."""
    items = list((metadata or {}).items())
    shown = ", ".join(f"{k}={_short(v, SUMMARY_CHARS)}" for k, v in items[:SUMMARY_KEYS])
    more = len(items) - SUMMARY_KEYS
    return f"{shown} +{more} more" if more > 0 else shown


@register.filter
def rows_of(changelist) -> RowCount:
    """A changelist's count: the ``RowCount`` of the admin's counting paginator, or the exact
    count of any other changelist."""
    return getattr(changelist.paginator, "row_count", None) or RowCount(changelist.result_count)
