"""The benchmark's Django-side steps, run by ``bench/run.py`` as a subprocess with the database
chosen by ``DATABASE_URL``:

    python bench/tasks.py prepare MAIN OTHER   # migrate, seed if needed, an API key for each -> JSON
    python bench/tasks.py list MAIN REPEAT      # time the list API in-process, EXPLAIN it -> JSON
    python bench/tasks.py list_sql KEY          # the parity list's SQL, its bucket a placeholder -> JSON

"In-process" means Django's test client through the whole middleware and DRF stack: the figure
is the server's own time for a request, without the network or the HTTP server.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")

import django  # noqa: E402

django.setup()

import seed  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from threads.keys import api_key_create  # noqa: E402
from threads.models import Organization, Thread  # noqa: E402

MAIN, OTHER = "bench-main", "bench-other"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _org(slug: str) -> Organization:
    return Organization.objects.get_or_create(slug=slug, defaults={"name": slug})[0]


def prepare(main_count: int, other_count: int) -> dict:
    call_command("migrate", verbosity=0, interactive=False)
    orgs = [(MAIN, _org(MAIN), main_count), (OTHER, _org(OTHER), other_count)]
    have = {slug: Thread.objects.filter(organization=org).count() for slug, org, _ in orgs}
    # A seed from before the `bucket` metadata key (the parity list's filter) is made again.
    stale = main_count and not Thread.objects.filter(organization=orgs[0][1], metadata__has_key="bucket").exists()
    if stale or any(have[slug] != count for slug, _, count in orgs):
        _log(f"seeding {connection.vendor}: {main_count:,} + {other_count:,} threads (had {have})")
        started = time.monotonic()
        for _, org, _ in orgs:
            Thread.objects.filter(organization=org).delete()
        todo = [(slug, str(org.pk), count) for slug, org, count in orgs]
        if connection.vendor == "postgresql":
            import psycopg

            settings = connection.settings_dict
            with psycopg.connect(
                dbname=settings["NAME"],
                user=settings["USER"],
                host=settings["HOST"],
                port=settings["PORT"] or 5432,
                password=settings["PASSWORD"] or None,
            ) as conn:
                seed.seed_postgres(conn, todo)
        else:
            connection.ensure_connection()
            connection.connection.isolation_level = None  # autocommit between our own BEGIN/COMMIT
            raw = connection.connection
            raw.execute("BEGIN")
            seed.seed_sqlite(raw, todo)
        seeded = time.monotonic() - started
    else:
        _log(f"reusing the seeded {connection.vendor} database ({have})")
        seeded = None
    org = orgs[0][1]
    raw_key = api_key_create(org=org, name=f"bench {time.strftime('%H:%M:%S')}")[1]
    # A load on the other organization needs that organization's key: with this one's every
    # request would be a 404.
    other_key = api_key_create(org=orgs[1][1], name=f"bench {time.strftime('%H:%M:%S')}")[1]
    return {
        "key": raw_key,
        "other_key": other_key,
        "org": str(org.pk),
        "seed_seconds": seeded,
        "counts": {MAIN: main_count, OTHER: other_count},
    }


def _cursor_at(n: int) -> str:
    """A keyset cursor positioned at thread ``n`` of the main organization (default ordering)."""
    created = seed.EPOCH + n * seed.STEP
    payload = {"v": {"t": created.isoformat()}, "k": seed.thread_id(MAIN, n)}
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


LIST_CASES = [
    ("no filter", {}),
    ("tag (common, ~19%)", {"tag": "billing"}),
    ("tag (rare, ~3%)", {"tag": "topic-07"}),
    ("tag + isArchived=false", {"tag": "billing", "isArchived": "false"}),
    ("metadata.customer_tier=enterprise", {"metadata.customer_tier": "enterprise"}),
    ("metadata.bucket=7 (2%)", {"metadata.bucket": "7"}),
    ("search (common word)", {"search": "refund"}),
    ("search (rare)", {"search": "#7777"}),
]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def _explain(sql: str) -> list[str]:
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) " + sql)
        else:
            cur.execute("EXPLAIN QUERY PLAN " + sql)
            return [row[-1] for row in cur.fetchall()]
        return [row[0] for row in cur.fetchall()]


def _plan_ok(plan: list[str], sql: str) -> tuple[bool, str]:
    text = "\n".join(plan)
    problems = []
    if " OFFSET " in sql.upper():
        problems.append("OFFSET")
    if connection.vendor == "postgresql":
        if "Seq Scan on threads_thread" in text:
            problems.append("sequential scan")
    else:
        if any(line.startswith("SCAN threads_thread") and "INDEX" not in line for line in plan):
            problems.append("full table scan")
    return not problems, ", ".join(problems) or "index scans"


def list_timings(main_count: int, repeat: int, key: str) -> list[dict]:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    deep = _cursor_at(max(1, main_count // 10))  # 90% of the way down the newest-first list
    results = []
    for label, params in LIST_CASES:
        pages = {"first": params, "deep cursor": {**params, "cursor": deep}}
        for query in pages.values():
            for _ in range(3):  # warm the caches and the connection
                response = client.get("/api/v1/threads", query)
                assert response.status_code == 200, response.content[:300]
        # The first and the deep page alternate, so that both meet the same load from elsewhere.
        times: dict[str, list[float]] = {page: [] for page in pages}
        budget = time.monotonic() + 60  # bounded: at most a minute per case
        for _ in range(repeat):
            for page, query in pages.items():
                started = time.perf_counter()
                client.get("/api/v1/threads", query)
                times[page].append((time.perf_counter() - started) * 1000)
            if time.monotonic() > budget:
                break
        for page, query in pages.items():
            response = client.get("/api/v1/threads", query)
            rows = len(response.json()["results"])
            with CaptureQueriesContext(connection) as captured:
                client.get("/api/v1/threads", query)
            sqls = [q["sql"] for q in captured.captured_queries if "threads_thread" in q["sql"]]
            sql = sqls[-1] if sqls else ""
            plan = _explain(sql) if sql else []
            ok, verdict = _plan_ok(plan, sql)
            executed = next((line.split(":")[1].strip() for line in plan if line.startswith("Execution Time")), "")
            results.append(
                {
                    "case": label,
                    "page": page,
                    "params": query,
                    "rows": rows,
                    "n": len(times[page]),
                    "p50_ms": round(statistics.median(times[page]), 2),
                    "p99_ms": round(_percentile(times[page], 99), 2),
                    "db_ms": float(executed.split()[0]) if executed else None,
                    "queries": len(captured.captured_queries),
                    "sql": sql,
                    "plan": plan,
                    "plan_ok": ok,
                    "plan_verdict": verdict,
                }
            )
            r = results[-1]
            _log(
                f"  {label:<36} {page:<12} p50 {r['p50_ms']:>7.2f} ms  p99 {r['p99_ms']:>7.2f} ms"
                f"  db {r['db_ms'] if r['db_ms'] is not None else '-'} ms  rows {rows}  {verdict}"
            )
    return results


BUCKET_PLACEHOLDER = "bench-bucket"


def list_sql(key: str) -> dict:
    """The SQL that ``GET /api/v1/threads?metadata.bucket=…&limit=20`` runs, as executed, with
    the bucket's value left as ``BUCKET_PLACEHOLDER`` (for the pgbench script of the same query)."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_HOST="127.0.0.1")
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/api/v1/threads", {"metadata.bucket": BUCKET_PLACEHOLDER, "limit": 20})
    assert response.status_code == 200, response.content[:300]
    sql = next(q["sql"] for q in captured.captured_queries if BUCKET_PLACEHOLDER in q["sql"])
    return {"sql": sql, "placeholder": BUCKET_PLACEHOLDER}


if __name__ == "__main__":
    task = sys.argv[1]
    if task == "prepare":
        out = prepare(int(sys.argv[2]), int(sys.argv[3]))
    elif task == "list":
        out = list_timings(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif task == "list_sql":
        out = list_sql(sys.argv[2])
    else:
        raise SystemExit(f"unknown task {task}")
    print(json.dumps(out))
