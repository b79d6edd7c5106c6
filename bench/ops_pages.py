"""The operator pages and the admin at scale (issue 15), run by ``bench/run.py`` (section ``ops``)
as a subprocess with the database chosen by ``DATABASE_URL`` (already seeded by ``tasks.py
prepare``: 1,000,000 threads in bench-main, 100,000 in bench-other):

    python bench/ops_pages.py REPEAT   # -> JSON on the last line

It adds three history events a thread (created, two updates) if the database has none, signs in
a staff operator of each organization, then loads every page below through `manage.py serve` (DEBUG off,
the session cookie of a real login) ``REPEAT`` times each, alternating the two organizations, and
reports p50/p99. In-process it counts each page's queries and ``EXPLAIN ANALYZE``s them: no
``Seq Scan`` on threads or events, no ``OFFSET`` on the operator list.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from run import server  # noqa: E402
from tasks import MAIN, OTHER, _log, _percentile  # noqa: E402

from threads.models import Event, Membership, Organization  # noqa: E402

OPS = "/ops/threads/"
ADMIN = "/admin/threads/thread/"
PAGES = [
    ("ops: first page", OPS, {}),
    ("ops: tag=billing", OPS, {"tag": "billing"}),
    ("ops: tag=topic-07 (rare)", OPS, {"tag": "topic-07"}),
    ("ops: search=refund", OPS, {"search": "refund"}),
    ("ops: projectId=proj-3", OPS, {"projectId": "proj-3"}),
    ("ops: isArchived=true", OPS, {"isArchived": "true"}),
    ("ops: isArchived=any", OPS, {"isArchived": "any"}),
    ("ops: visibleInUi=false", OPS, {"visibleInUi": "false"}),
    ("ops: isPinned=true", OPS, {"isPinned": "true"}),
    ("ops: metadata.customer_tier=enterprise", OPS, {"metadata.customer_tier": "enterprise"}),
    *[
        (f"ops: ordering={o}", OPS, {"ordering": o})
        for o in (
            "title",
            "-title",
            "messageCount",
            "-messageCount",
            "lastActivityAt",
            "-lastActivityAt",
            "createdAt",
            "-createdAt",
            "updatedAt",
        )
    ],
    ("ops: 200 pages down (cursor)", OPS, "deep"),
    ("admin: first page", ADMIN, {}),
    ("admin: q=refund", ADMIN, {"q": "refund"}),
    ("admin: q=<thread id>", ADMIN, "by-id"),
    ("admin: q=proj-3 (project id)", ADMIN, {"q": "proj-3"}),
    ("admin: is_archived__exact=1", ADMIN, {"is_archived__exact": "1"}),
    ("admin: visible_in_ui__exact=0", ADMIN, {"visible_in_ui__exact": "0"}),
    ("admin: is_active__exact=0", ADMIN, {"is_active__exact": "0"}),
    ("admin: is_pinned__exact=1", ADMIN, {"is_pinned__exact": "1"}),
    ("admin: project_id=proj-3", ADMIN, {"project_id": "proj-3"}),
    ("admin: user_id=user-42", ADMIN, {"user_id": "user-42"}),
    ("admin: created_at (past 7 days)", ADMIN, "week"),
    ("admin: p=500", ADMIN, {"p": "500"}),
    *[(f"admin: o={o}", ADMIN, {"o": o}) for o in ("1", "-1", "10", "-10", "11", "-11")],
    ("admin events: first page", "/admin/threads/event/", {}),
    ("admin events: action=updated", "/admin/threads/event/", {"action__exact": "updated"}),
    # No event of the seed has these actions: the partial index of deletions finds that at once
    # (the organization's whole index would be read otherwise).
    ("admin events: action=deleted (none)", "/admin/threads/event/", {"action__exact": "deleted"}),
    ("admin events: action=message_deleted (none)", "/admin/threads/event/", {"action__exact": "message_deleted"}),
    ("admin events: q=<thread id>", "/admin/threads/event/", "by-id"),
    ("admin events: p=500", "/admin/threads/event/", {"p": "500"}),
]


def seed_events() -> None:
    """Three history events a thread, in one statement, and the threads' versions to match, unless
    seeded before (events that other sections' PATCHes wrote do not count); then fresh statistics,
    as autovacuum would keep them."""
    started = time.monotonic()
    with connection.cursor() as cur:
        if not Event.objects.filter(actor_type="command", actor_name="bench").exists():
            cur.execute("""
                INSERT INTO threads_event (organization_id, thread_id, action, version, actor_type,
                                           actor_id, actor_name, changes, created_at)
                SELECT t.organization_id, t.id, CASE WHEN v = 1 THEN 'created' ELSE 'updated' END, v,
                       'command', '', 'bench', '{}', t.created_at + (v - 1) * interval '1 minute'
                FROM threads_thread t CROSS JOIN generate_series(1, 3) AS v ORDER BY t.created_at, v
                ON CONFLICT DO NOTHING""")
            # A thread with events up to version 3 is at version 3 at least: else the next PATCH of
            # a seeded thread (version 2) would meet the event that claims that version already.
            cur.execute("UPDATE threads_thread SET version = 3 WHERE version < 3")
            _log(f"  events seeded in {time.monotonic() - started:.0f}s")
        cur.execute("VACUUM ANALYZE threads_event")
        cur.execute("VACUUM ANALYZE threads_thread")


def operator(slug: str) -> User:
    """A staff member of the organization who may view and change threads and view events."""
    user, _ = User.objects.get_or_create(username=f"bench-ops-{slug}", defaults={"is_staff": True})
    Membership.objects.get_or_create(user=user, defaults={"organization": Organization.objects.get(slug=slug)})
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_thread", "change_thread", "view_event"]))
    return user


def query_of(url: str, params, org: Organization) -> dict:
    if params == "deep":  # as if "Older" were followed 200 times: 10,000 rows down
        return {"cursor": _deep_cursor(org)}
    if params == "by-id":
        return {"q": str(org.threads.order_by("-created_at").values_list("pk", flat=True)[500])}
    if params == "week":
        return {"created_at__gte": "2025-01-15", "created_at__lt": "2025-01-22"}  # in both orgs' range
    return params


def _deep_cursor(org: Organization) -> str:
    row = org.threads.filter(is_archived=False).order_by("-updated_at", "-id").only("id", "updated_at")[200 * 50 - 1]
    payload = {"v": {"t": row.updated_at.isoformat()}, "k": str(row.pk)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def explain(sql: str, params) -> list[str]:
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return [row[0] for row in cur.fetchall()]


def inspect(client: Client, url: str, query: dict) -> dict:
    """Queries of one load (in-process), and the plan of each that reads threads or events."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, query)
    assert response.status_code == 200, (url, query, response.status_code)
    plans, problems = [], set()
    for q in captured.captured_queries:
        sql = q["sql"]
        if not sql.startswith("SELECT") or not ("threads_thread" in sql or "threads_event" in sql):
            continue
        # The captured SQL has its parameters inlined; EXPLAIN it as is.
        plan = explain(sql, None)
        plans.append({"sql": sql, "plan": plan})
        text = "\n".join(plan)
        if "Seq Scan on threads_thread" in text or "Seq Scan on threads_event" in text:
            problems.add("sequential scan")
        if url == OPS and " OFFSET " in sql:
            problems.add("OFFSET")
    count = response.context["count"] if url == OPS else response.context["cl"].paginator.row_count
    return {
        "queries": len(captured.captured_queries),
        "plans": plans,
        "count": str(count),
        "plan_ok": not problems,
        "plan_verdict": ", ".join(sorted(problems)) or "index scans",
    }


def main(repeat: int) -> list[dict]:
    seed_events()
    setup_test_environment()  # so that responses keep their template context (the counts)
    orgs = {slug: Organization.objects.get(slug=slug) for slug in (MAIN, OTHER)}
    clients = {}
    for slug in orgs:
        clients[slug] = Client(HTTP_HOST="127.0.0.1")
        clients[slug].force_login(operator(slug))
    env = {**os.environ, "DJANGO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"}
    results = []
    # BENCH_OPS_PAGES="admin events,ops: first" times only the pages whose label contains one of these.
    wanted = [w.strip() for w in os.environ.get("BENCH_OPS_PAGES", "").split(",") if w.strip()]
    pages = [p for p in PAGES if not wanted or any(w in p[0] for w in wanted)]
    command = [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", "{port}", "--workers", "2"]
    with server("serve", command, env, "/accounts/login/") as (base, _):
        for label, url, params in pages:
            queries = {slug: query_of(url, params, org) for slug, org in orgs.items()}
            requests = {
                slug: urllib.request.Request(
                    f"{base}{url}?{urllib.parse.urlencode(queries[slug])}",
                    headers={"Cookie": f"sessionid={clients[slug].cookies['sessionid'].value}"},
                )
                for slug in orgs
            }
            times: dict[str, list[float]] = {slug: [] for slug in orgs}
            budget = time.monotonic() + 60  # bounded: at most a minute a page
            for i in range(repeat + 2):
                for slug, request in requests.items():
                    started = time.perf_counter()
                    with urllib.request.urlopen(request, timeout=30) as response:
                        response.read()
                        assert response.status == 200, (label, response.status)
                    if i >= 2:  # two warm-up loads
                        times[slug].append((time.perf_counter() - started) * 1000)
                if time.monotonic() > budget:
                    break
            row = {"page": label, "url": url}
            for slug, key in ((MAIN, "main"), (OTHER, "other")):
                row[key] = {
                    "params": queries[slug],
                    "n": len(times[slug]),
                    "p50_ms": round(statistics.median(times[slug]), 1),
                    "p99_ms": round(_percentile(times[slug], 99), 1),
                    **inspect(clients[slug], url, queries[slug]),
                }
            row["growth"] = round(row["main"]["p50_ms"] / row["other"]["p50_ms"], 2)
            results.append(row)
            m, o = row["main"], row["other"]
            _log(
                f"  {label:<44} 1M p50 {m['p50_ms']:>6.1f} p99 {m['p99_ms']:>6.1f} ms  100k p50 "
                f"{o['p50_ms']:>6.1f} ms  x{row['growth']:.2f}  queries {m['queries']}/{o['queries']}"
                f"  {m['count']}  {m['plan_verdict']}"
            )
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
