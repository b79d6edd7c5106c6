"""Keyset (cursor) pagination in DRF's style: ``{next, previous, results}``.

DRF's own CursorPagination keys on one field and falls back to offsets within ties, and loses
rows whose ordering field is NULL. This keys on ``(field, id)`` with NULLs last, so every page
is one indexed range query whatever its depth: ``(field, id) < (value, key)`` (a row-value
comparison on PostgreSQL, which the ``(organization, field, id)`` index serves as its range).
A nullable field's NULLs are a second range, read only when a page reaches them. The operator
list uses the same class with its own page size and links.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.http import HttpResponse
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from ..errors import invalid
from .serializers import json_text

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _typed(field, value: Any) -> Any:
    """A cursor's value as the column's type (ValidationError or ValueError when it is not)."""
    if value is None:
        return None
    if isinstance(value, (dict, list, bool)):
        raise ValueError
    value = field.to_python(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError
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
    def __init__(self, ordering: list[tuple[str, bool]], limit: int | None = None) -> None:
        # [(field, descending), ("id", descending)]: the last field is unique.
        (self.field, self.desc), (self.tiebreak, _) = ordering
        self.fixed_limit = limit

    def paginate(self, queryset: QuerySet, request, values: dict | None = None) -> list:
        """The page's rows: model instances, or with ``values`` (name -> expression) dicts of
        those expressions and the ordering fields."""
        self.request = request
        self.params = getattr(request, "query_params", request.GET)
        self.limit = self.fixed_limit or self._limit()
        self.model_field = queryset.model._meta.get_field(self.field)
        self.key_field = queryset.model._meta.get_field(self.tiebreak)
        position, self.backwards = self._cursor()
        if values is not None:
            queryset = queryset.values(self.field, self.tiebreak, **values)
        rows: list = []
        for where, order in self._ranges(position):
            if len(rows) > self.limit:
                break
            rows += queryset.filter(where).order_by(*order)[: self.limit + 1 - len(rows)]
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
        return Response({"next": self._link(False), "previous": self._link(True), "results": data})

    def json_response(self, rows: list[str]) -> HttpResponse:
        """The page of ``response``, its rows given as JSON texts and written as they are."""
        links = {"next": self._link(False), "previous": self._link(True)}
        head = json.dumps(links, ensure_ascii=False, separators=(",", ":"))
        body = f'{head[:-1]},"results":[{",".join(rows)}]}}'
        return HttpResponse(json_text(body), content_type="application/json")

    def cursor(self, backwards: bool) -> str | None:
        """The cursor of the next page (or of the previous one, ``backwards``); None at an end."""
        if not self.rows or not (self.has_previous if backwards else self.has_next):
            return None
        row = self.rows[0 if backwards else -1]
        get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
        payload = {"v": _encode(get(self.field)), "k": _encode(get(self.tiebreak))}
        if backwards:
            payload["r"] = 1
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    def _limit(self) -> int:
        return parse_limit(self.params.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)

    def _cursor(self) -> tuple[tuple[Any, Any] | None, bool]:
        """The position a cursor names, typed like the columns it is compared with: a cursor
        made up by hand is a 400, never a database error."""
        raw = self.params.get("cursor")
        if not raw:
            return None, False
        try:
            data = json.loads(base64.urlsafe_b64decode(raw.encode() + b"=" * (-len(raw) % 4)))
            value, key = data["v"], data["k"]
            if isinstance(value, dict):
                value = value["t"]
            if key is None or value is None and not self.model_field.null:
                raise ValueError
            return (_typed(self.model_field, value), _typed(self.key_field, key)), bool(data.get("r"))
        except (ValueError, KeyError, TypeError, AttributeError, ValidationError):
            raise invalid("The cursor is not valid.", "cursor") from None

    def _ranges(self, position: tuple[Any, Any] | None) -> list[tuple[Q, list]]:
        """The rows beyond the position, as ranges read in turn: ``(filter, order)`` each.
        Going forwards the non-NULL values come first and the NULLs after them."""
        desc = self.desc != self.backwards
        f, t = self.field, self.tiebreak
        order = [F(f).desc(), F(t).desc()] if desc else [F(f).asc(), F(t).asc()]
        null_order = [F(t).desc() if desc else F(t).asc()]
        nullable = self.model_field.null
        values, nulls = Q(**{f"{f}__isnull": False}) if nullable else Q(), Q(**{f"{f}__isnull": True})
        value, key = position if position else (None, None)
        if position is not None:
            beyond = TupleLessThan if desc else TupleGreaterThan
            cmp = "lt" if desc else "gt"
            if value is None:
                nulls &= Q(**{f"{t}__{cmp}": key})
            else:
                # The redundant bound ``field <= value`` in front lets SQLite (which spells the
                # row comparison out as ORs) start its index scan at the cursor too.
                values &= Q(**{f"{f}__{cmp}e": value}) & beyond(Tuple(F(f), F(t)), (value, key))
        if not nullable:
            return [(values, order)]
        if position is not None and (value is None) != self.backwards:
            # Forwards from a NULL, only NULLs follow; backwards from a value, only values.
            return [(nulls, null_order)] if value is None else [(values, order)]
        ranges = [(values, order), (nulls, null_order)]
        return ranges[::-1] if self.backwards else ranges

    def _link(self, backwards: bool) -> str | None:
        cursor = self.cursor(backwards)
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(remove_query_param(url, "cursor"), "cursor", cursor)
