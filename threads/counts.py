"""Row counts that cost nothing at any size, for the operator list and the admin.

A list page never counts a whole organization: it counts up to ``EXACT_UP_TO`` rows (a
``COUNT`` over a ``LIMIT`` subquery, so at most that many rows are read) and, past that, shows
PostgreSQL's own estimate of the filtered query (``EXPLAIN``: planning only, nothing is read),
"about 1.0 M". SQLite has no such estimate: past the cap it says "more than 1,000".
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_UP_TO = 1000


@dataclass(frozen=True)
class RowCount:
    value: int
    exact: bool

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        if self.value <= EXACT_UP_TO:
            return f"more than {EXACT_UP_TO:,}"
        if self.value >= 1_000_000:
            return f"about {self.value / 1_000_000:.1f} M"
        return f"about {self.value / 1000:.0f} K" if self.value >= 10_000 else f"about {self.value:,}"


def row_count(queryset: QuerySet) -> RowCount:
    """``queryset`` in an indexed order: the capped count then reads an index in order and
    stops, instead of collecting the whole filtered list."""
    capped = queryset[: EXACT_UP_TO + 1].count()
    if capped <= EXACT_UP_TO:
        return RowCount(capped, True)
    return RowCount(max(capped, _planner_rows(queryset)), False)


def _planner_rows(queryset: QuerySet) -> int:
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return 0
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """The admin's paginator: pages numbered as usual, counted by ``row_count``. Past an estimate
    or a cap any page number may be asked for; one past the last row is an empty page."""

    @cached_property
    def row_count(self) -> RowCount:
        return row_count(self.object_list)

    @cached_property
    def count(self) -> int:
        return self.row_count.value

    def get_elided_page_range(self, number=1, *, on_each_side=3, on_ends=2):
        """Without the last pages while the count is estimated: their offsets would read the
        whole list, and the estimate does not say where it ends."""
        if self.row_count.exact:
            return super().get_elided_page_range(number, on_each_side=on_each_side, on_ends=on_ends)
        number = int(number)
        start = max(1, number - on_each_side)
        head = [*range(1, on_ends + 1), self.ELLIPSIS] if start > on_ends + 1 else range(1, start)
        return [*head, *range(start, min(number + on_each_side, self.num_pages) + 1), self.ELLIPSIS]

    def page(self, number):
        """The page's ids first (an index-only scan past its offset), then its rows by id: a deep
        page reads the offset's index entries, not as many table rows."""
        number = self.validate_number(number) if self.row_count.exact else max(1, int(number))
        bottom = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)
