"""Keyset (cursor) pagination in DRF's style: ``{next, previous, results}``.

DRF's own CursorPagination keys on one field and falls back to offsets within ties, and loses
rows whose ordering field is NULL. This keys on ``(field, id)`` with NULLs last, so every page
is one indexed range query whatever its depth.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from django.db.models import F, Q, QuerySet
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from ..errors import invalid

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return datetime.fromisoformat(value["t"])
    return value


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    """A ``limit`` query parameter: absent is the default, above the maximum is the maximum."""
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("'limit' must be a whole number.", "limit") from None
    if limit < 1:
        raise invalid("'limit' must be at least 1.", "limit")
    return min(limit, maximum)


class KeysetPagination:
    def __init__(self, ordering: list[tuple[str, bool]]) -> None:
        # [(field, descending), ("id", descending)]: the last field is unique.
        (self.field, self.desc), (self.tiebreak, _) = ordering

    def paginate(self, queryset: QuerySet, request) -> list:
        self.request = request
        self.limit = self._limit(request)
        position, self.backwards = self._cursor(request)
        nullable = self.nullable = queryset.model._meta.get_field(self.field).null
        if position is not None:
            queryset = queryset.filter(self._beyond(position, nullable))
        rows = list(queryset.order_by(*self._order(self.backwards))[: self.limit + 1])
        more = len(rows) > self.limit
        rows = rows[: self.limit]
        if self.backwards:
            rows.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, position is not None
        self.rows = rows
        return rows

    def response(self, data: list) -> Response:
        return Response({"next": self._link(-1, False), "previous": self._link(0, True), "results": data})

    def _limit(self, request) -> int:
        return parse_limit(request.query_params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)

    def _cursor(self, request) -> tuple[tuple[Any, Any] | None, bool]:
        raw = request.query_params.get("cursor")
        if not raw:
            return None, False
        try:
            data = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
            value, key = _decode(data["v"]), data["k"]
            return (value, key), bool(data.get("r"))
        except (ValueError, KeyError, TypeError):
            raise invalid("The cursor is not valid.", "cursor") from None

    def _order(self, backwards: bool) -> list:
        desc = self.desc != backwards
        # Only a nullable field says where NULLs go: on a NOT NULL column the clause changes no
        # row's place, but PostgreSQL would no longer read the order from the (org, field, id)
        # index and would sort the whole organization instead.
        nulls = {} if not self.nullable else {"nulls_last": True} if not backwards else {"nulls_first": True}
        first = F(self.field).desc(**nulls) if desc else F(self.field).asc(**nulls)
        return [first, F(self.tiebreak).desc() if desc else F(self.tiebreak).asc()]

    def _beyond(self, position: tuple[Any, Any], nullable: bool) -> Q:
        """Rows after the position in the page's direction (NULLs sort last going forwards)."""
        value, key = position
        forward_less = self.desc != self.backwards
        cmp = "lt" if forward_less else "gt"
        f, t = self.field, self.tiebreak
        if value is None:
            if not self.backwards:
                return Q(**{f"{f}__isnull": True, f"{t}__{cmp}": key})
            return Q(**{f"{f}__isnull": False}) | Q(**{f"{f}__isnull": True, f"{t}__{cmp}": key})
        # (field < v) OR (field = v AND id < k), with the redundant bound field <= v in front: the
        # bound is what lets the database start the index scan at the cursor instead of filtering
        # its way down from the first row (a deep page would cost as much as all pages before it).
        q = Q(**{f"{f}__{cmp}e": value}) & (Q(**{f"{f}__{cmp}": value}) | Q(**{f: value, f"{t}__{cmp}": key}))
        if nullable and not self.backwards:
            return q | Q(**{f"{f}__isnull": True})  # NULLs sort last going forwards
        return q

    def _link(self, index: int, backwards: bool) -> str | None:
        if not self.rows or not (self.has_previous if backwards else self.has_next):
            return None
        row = self.rows[index]
        payload = {"v": _encode(getattr(row, self.field)), "k": _encode(getattr(row, self.tiebreak))}
        if backwards:
            payload["r"] = 1
        cursor = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        url = self.request.build_absolute_uri()
        return replace_query_param(remove_query_param(url, "cursor"), "cursor", cursor)

