"""Counts past 1,000 rows on the operator list and the admin (threads/counts.py): exact where an
exact count is cheap, "more than 1,000" where it is not (SQLite), the planner's estimate on
PostgreSQL marked as one — never the cap itself taken for a count ("1001 results")."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from threads.counts import RowCount
from threads.models import Thread

pytestmark = pytest.mark.django_db
POSTGRES = connection.vendor == "postgresql"
LIST = "/ops/threads/"
ADMIN = "/admin/threads/thread/"


def add_threads(org, count: int, title: str = "t") -> None:
    Thread.objects.bulk_create([Thread(organization=org, title=f"{title}{i}") for i in range(count)])


def text_of(response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:p|span)>', response.text, re.S)
    assert match, f"no #{element_id} on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(1))).strip()


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (RowCount(1), "1"),
        (RowCount(1037), "1,037"),
        (RowCount(1001, exact=False), "more than 1,000"),
        (RowCount(10_001, exact=False), "more than 10,000"),
        (RowCount(14_200, exact=False, estimated=True), "about 14 K"),
        (RowCount(1_048_576, exact=False, estimated=True), "about 1.0 M"),
    ],
)
def test_a_count_reads_as_what_it_is(count, expected):
    assert str(count) == expected
    assert bool(count.note) is not count.exact


def test_the_operator_list_past_a_thousand_is_exact_on_postgresql_and_more_than_1000_on_sqlite(client, org, member):
    add_threads(org, 1010)
    client.force_login(member)

    response = client.get(LIST)

    shown = text_of(response, "row-count")
    assert "1,001" not in shown
    if POSTGRES:  # the planner expects about 1,010: counting them is cheap
        assert shown == "1,010 threads" and response.context["count"].exact
    else:
        assert shown == "more than 1,000 threads" and not response.context["count"].exact


def test_the_admin_count_and_paginator_past_a_thousand_never_show_the_cap(admin_client, org):
    add_threads(org, 1037, title="refund ")

    response = admin_client.get(ADMIN, {"q": "refund"})

    results, paginator = text_of(response, "search-result-count"), text_of(response, "result-count")
    assert not re.search(r"1,?001 (results|threads|selected)", response.text)
    if POSTGRES:
        assert (results, paginator) == ("1,037 results (Show all)", "1,037 threads")
        assert response.context["selection_note_all"] == "All 1,037 selected"
        assert "Select all threads (1,037)" in response.text
    else:
        assert (results, paginator) == ("more than 1,000 results (Show all)", "more than 1,000 threads")
        assert response.context["selection_note_all"] == "All more than 1,000 selected"


def test_past_a_lower_bound_the_admin_links_the_next_page_and_it_has_the_rows(admin_client, org):
    add_threads(org, 1070)

    last_known = admin_client.get(ADMIN, {"p": "21"})  # rows 1,001 to 1,050
    beyond = admin_client.get(ADMIN, {"p": "22"})

    assert len(last_known.context["cl"].result_list) == 50
    assert len(beyond.context["cl"].result_list) == 20
    if not POSTGRES:  # counted exactly on PostgreSQL: 22 pages, the last one linked as usual
        assert "?p=22" in last_known.text


@pytest.mark.skipif(not POSTGRES, reason="the planner's estimate is PostgreSQL's")
def test_a_long_list_shows_the_planner_s_estimate_marked_as_one(client, org, member):
    add_threads(org, 12_000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threads_thread")
    client.force_login(member)

    response = client.get(LIST)

    count = response.context["count"]
    assert count.estimated and not count.exact and 9_000 <= count.value <= 15_000
    assert re.fullmatch(r"about 1\d K threads \(estimate\)", text_of(response, "row-count"))
    assert "estimate" in re.search(r'id="row-count"[^>]*title="([^"]+)"', response.text).group(1)
