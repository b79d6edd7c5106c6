"""Row counts that are true and cost little at any size, for the operator list and the admin.

A list page never counts a whole organization. It counts up to ``EXACT_UP_TO`` rows (a ``COUNT``
over a ``LIMIT`` subquery, so at most that many rows are read): up to there the figure is exact.
Past it:

- on PostgreSQL the planner's estimate of the filtered query is asked (``EXPLAIN``: planning
  only, nothing is read). An estimate up to ``CHEAP_UP_TO`` is checked by counting up to that
  many rows, and the exact figure shown; a larger one is shown as what it is, "about 142 K"
  marked as an estimate;
- on SQLite, which has no estimate, the one true statement that costs nothing more: "more than
  1,000".
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_UP_TO = 1000
# Counting this many rows costs at most ten times the first count's reads: done when the
# planner expects no more, so that a list of 1,037 or 8,000 rows says exactly how many.
CHEAP_UP_TO = 10_000


@dataclass(frozen=True)
class RowCount:
    """``value`` is the count when ``exact``; the planner's figure when ``estimated``; otherwise
    the rows seen before counting stopped (so there are at least that many)."""

    value: int
    exact: bool = True
    estimated: bool = False

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:,}"
        if not self.estimated:
            return f"more than {self.value - 1:,}"
        if self.value >= 1_000_000:
            return f"about {self.value / 1_000_000:.1f} M"
        return f"about {self.value / 1000:.0f} K" if self.value >= 10_000 else f"about {self.value:,}"

    @property
    def note(self) -> str:
        """What a reader hovering over an inexact count is told."""
        if self.exact:
            return ""
        if self.estimated:
            return "PostgreSQL's estimate: a list this long is not counted row by row."
        return f"Not counted past {self.value - 1:,} rows: this database gives no estimate."


def _count_up_to(queryset: QuerySet, cap: int) -> int:
    return queryset[: cap + 1].count()


def row_count(queryset: QuerySet) -> RowCount:
    """``queryset`` in an indexed order: a capped count then reads an index in order and stops,
    instead of collecting the whole filtered list."""
    counted = _count_up_to(queryset, EXACT_UP_TO)
    if counted <= EXACT_UP_TO:
        return RowCount(counted)
    estimate = _planner_rows(queryset)
    if estimate is None:
        return RowCount(counted, exact=False)
    if estimate <= CHEAP_UP_TO:
        counted = _count_up_to(queryset, CHEAP_UP_TO)
        if counted <= CHEAP_UP_TO:
            return RowCount(counted)
        return RowCount(counted, exact=False)  # the planner was far off: say what was seen
    return RowCount(estimate, exact=False, estimated=True)


def _planner_rows(queryset: QuerySet) -> int | None:
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
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
        """Without the last pages while the count is not exact: their offsets would read the
        whole list, and neither an estimate nor a lower bound says where it ends. Past a lower
        bound ("more than 1,000") the next page is always linked: there may be more."""
        if self.row_count.exact:
            return super().get_elided_page_range(number, on_each_side=on_each_side, on_ends=on_ends)
        number = int(number)
        start = max(1, number - on_each_side)
        last = min(number + on_each_side, self.num_pages)
        if not self.row_count.estimated:
            last = max(last, number + 1)
        head = [*range(1, on_ends + 1), self.ELLIPSIS] if start > on_ends + 1 else range(1, start)
        return [*head, *range(start, last + 1), self.ELLIPSIS]

    def page(self, number):
        """The page's ids first (an index-only scan past its offset), then its rows by id: a deep
        page reads the offset's index entries, not as many table rows."""
        number = self.validate_number(number) if self.row_count.exact else max(1, int(number))
        bottom = (number - 1) * self.per_page
        ids = list(self.object_list.values_list("pk", flat=True)[bottom : bottom + self.per_page])
        return self._get_page(self.object_list.filter(pk__in=ids), number, self)
