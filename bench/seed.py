"""A fast bulk seeder for the benchmark: realistic threads, straight into the database.

It does not go through the services (a million history events would only slow the seed and
measure nothing): it writes rows that look like the product's own, then lets the benchmark
read and PATCH them through the real API.

- PostgreSQL: ``COPY`` into ``threads_thread`` with the secondary indexes dropped and rebuilt
  afterwards (a sorted index build is several times faster than a million inserts into ten
  indexes), then ``ANALYZE``.
- SQLite: ``executemany`` in one transaction.

Neither binds more than a row's 18 parameters to a statement (``COPY`` binds none), so neither
meets the 65,535-parameter limit of a statement under server-side binding; the Django bulk writes
(``seed_demo``'s ``bulk_create``) are cut by parameter count in threads_project/postgres.

Thread ids are ``uuid(md5("<org slug>-<n>"))`` so that wrk scripts and pgbench can name the
same rows without a lookup. ``created_at`` grows with ``n`` (one thread every 30 s), so that
``n`` near 0 is the oldest thread and a "deep" cursor is one near the start of time.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)

TITLES = [
    "Billing question",
    "Refund request",
    "Password reset",
    "Shipping delay",
    "Feature idea",
    "Bug report",
    "Onboarding call",
    "Invoice copy",
    "API limits",
    "Account upgrade",
    "Data export",
    "SSO setup",
    "Webhook failures",
    "Mobile app crash",
    "Pricing plans",
]
# Tag popularity is skewed like real labels: a few common ones, a long tail.
COMMON_TAGS = ["support", "sales", "billing", "bug", "feedback", "onboarding", "urgent"]
TAIL_TAGS = [f"topic-{i:02d}" for i in range(30)]
TIERS = ["free", "free", "free", "pro", "pro", "enterprise"]
REGIONS = ["eu", "us", "apac", "latam"]
CHANNELS = ["web", "email", "slack", "api", "phone"]
BUCKETS = 50  # metadata.bucket: "0".."49", the parity list's filter (about 100 threads each in 5,000)
LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR"]

COLUMNS = (
    "id",
    "organization_id",
    "title",
    "metadata",
    "variables",
    "tags",
    "is_archived",
    "is_active",
    "visible_in_ui",
    "is_pinned",
    "project_id",
    "assistant_id",
    "user_id",
    "message_count",
    "last_activity_at",
    "created_at",
    "updated_at",
    "version",
)


def thread_id(slug: str, n: int) -> str:
    return str(uuid.UUID(hashlib.md5(f"{slug}-{n}".encode()).hexdigest()))


def row(slug: str, org_id: str, n: int) -> tuple:
    """Thread number ``n`` of organization ``slug``, as a tuple in ``COLUMNS`` order."""
    created = EPOCH + n * STEP
    messages = n % 40
    tags = [COMMON_TAGS[n % 7], TAIL_TAGS[(n * 31) % 30]]
    if n % 3 == 0:
        tags.append(COMMON_TAGS[(n // 7) % 7])
    tags = list(dict.fromkeys(tags))
    metadata = {
        "customer_tier": TIERS[(n * 7) % 6],
        "region": REGIONS[(n * 13) % 4],
        "channel": CHANNELS[(n * 3) % 5],
        "ticket": f"T-{n}",
        "bucket": str(n % BUCKETS),
    }
    if n % 4 == 0:
        metadata["labels"] = ["triaged", REGIONS[n % 4]]
    variables = {"locale": LOCALES[n % 6], "customer_name": f"Customer {n % 5000}"}
    if n % 2 == 0:
        variables["plan_renewal"] = (created + timedelta(days=365)).date().isoformat()
    return (
        thread_id(slug, n),
        org_id,
        f"{TITLES[n % len(TITLES)]} #{n}",
        json.dumps(metadata),
        json.dumps(variables),
        json.dumps(tags),
        n % 5 == 0,  # 20% archived
        n % 10 != 1,
        n % 50 != 0,
        n % 97 == 0,
        f"proj-{n % 20}",
        f"asst-{n % 8}",
        f"user-{n % 20000}",
        messages,
        created + timedelta(minutes=messages) if messages else None,
        created,
        created + timedelta(seconds=n % 1000),
        1,
    )


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6)
    print(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f} rows/s)", end="", file=sys.stderr, flush=True)


def seed_postgres(conn, orgs: list[tuple[str, str, int]]) -> None:
    """``orgs``: (slug, organization id, thread count). ``conn`` is a psycopg connection."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'threads_thread'"
            " AND indexname NOT LIKE '%%_pkey'"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX IF EXISTS "{name}"')
        conn.commit()
        for slug, org_id, count in orgs:
            started = time.monotonic()
            with cur.copy(f"COPY threads_thread ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for n in range(count):
                    copy.write_row(row(slug, org_id, n))
                    if n % 50_000 == 0:
                        _progress(slug, n, count, started)
            conn.commit()
            _progress(slug, count, count, started)
            print(file=sys.stderr)
        started = time.monotonic()
        cur.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            print(f"  index {name}", file=sys.stderr, flush=True)
            cur.execute(definition)
            conn.commit()
    conn.autocommit = True  # VACUUM cannot run in a transaction; it sets the visibility map and hint bits
    conn.execute("VACUUM ANALYZE threads_thread")
    print(f"  indexes rebuilt in {time.monotonic() - started:.0f}s", file=sys.stderr)


def seed_sqlite(conn, orgs: list[tuple[str, str, int]]) -> None:
    """``conn`` is a sqlite3 connection. Ids and booleans in Django's SQLite encoding."""
    placeholders = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO threads_thread ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    def encode(values: tuple) -> tuple:
        out = list(values)
        out[0] = out[0].replace("-", "")  # Django stores UUIDs as 32 hex characters on SQLite
        out[1] = out[1].replace("-", "")
        for i in (14, 15, 16):
            if out[i] is not None:
                out[i] = out[i].strftime("%Y-%m-%d %H:%M:%S.%f")
        return tuple(out)

    for slug, org_id, count in orgs:
        started = time.monotonic()
        batch = []
        for n in range(count):
            batch.append(encode(row(slug, org_id, n)))
            if len(batch) == 10_000:
                conn.executemany(sql, batch)
                batch.clear()
                _progress(slug, n + 1, count, started)
        if batch:
            conn.executemany(sql, batch)
        conn.commit()
        _progress(slug, count, count, started)
        print(file=sys.stderr)
    conn.execute("ANALYZE")
    conn.commit()
