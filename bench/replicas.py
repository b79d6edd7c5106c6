"""The ``replicas`` section of the benchmark suite (``BENCH_SECTIONS=replicas``), run by run.py: the
list API's throughput with the primary alone against the primary and one streaming replica.

The section makes its own pair of PostgreSQL servers (tests/replica.py: a primary set up for
streaming replication and a hot standby made with ``pg_basebackup -R``, each on a free port, both
on this machine), seeds ``BENCH_REPLICA_THREADS`` threads on the primary (replicated to the
standby), and runs two ``manage.py serve`` side by side: one with ``DATABASE_URL`` alone, one with
``DATABASE_REPLICA_URLS`` naming the standby. wrk sends the parity list (a page of 20 with one
metadata filter, ``bench/wrk/list.lua``) to each in alternating rounds (A/B, then B/A). For each
round: requests/s, p50/p99, CPU per request of the server and of each PostgreSQL server's
processes, and where the list's reads ran (``pg_stat_statements`` on each server).

On one machine a replica adds no CPU: both PostgreSQL servers and the app share the same cores, so
this measures what the routing costs (the replica's health check, the read-your-writes lookup) and
that the reads move, not the capacity a replica on its own machine adds.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

THREADS_DEFAULT = 5_000
PRIMARY, REPLICA = "primary only", "with replica"


def _postmaster(cluster) -> int | None:
    try:
        return int((Path(cluster.data) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def section(run) -> dict:
    if str(run.ROOT) not in sys.path:
        sys.path.insert(0, str(run.ROOT))  # the test components: tests/components.py, tests/replica.py
    from tests.components import pg_bin
    from tests.replica import READS, Standby, primary_cluster, statements

    bin_dir = pg_bin()
    if bin_dir is None or not (bin_dir / "pg_basebackup").exists():
        run.log("replicas: PostgreSQL's server binaries are not installed; skipped")
        return {"skipped": "PostgreSQL's server binaries are not installed"}
    threads = run._int("BENCH_REPLICA_THREADS", THREADS_DEFAULT, THREADS_DEFAULT)
    primary = primary_cluster(bin_dir)
    standby = None
    try:
        standby = Standby(primary)
        standby.init()
        run.log(
            f"replicas: seeding {threads:,} threads on the primary (port {primary.port}), standby on"
            f" port {standby.port}"
        )
        info = run.prepare(primary.url, threads, 0)
        primary.query("VACUUM ANALYZE")
        standby.caught_up(120)
        servers = {"primary": primary, "standby": standby}
        results: dict = {"threads": threads, "buckets": run.seed.BUCKETS}

        with (
            run.serve(primary.url, info["key"]) as (alone, alone_proc),
            run.serve(primary.url, info["key"], {"DATABASE_REPLICA_URLS": standby.url}) as (routed, routed_proc),
        ):

            def load(base: str, proc):
                cpu_of = {"server": lambda: run.tree(proc.pid)}
                for name, cluster in servers.items():
                    cpu_of[name] = lambda cluster=cluster: run.tree(_postmaster(cluster) or 0)

                def one(seconds: int) -> dict:
                    before = {name: statements(cluster, READS) for name, cluster in servers.items()}
                    data = run.wrk_run(base, "list.lua", ["ours", str(run.seed.BUCKETS), info["key"]], seconds, cpu_of)
                    data["reads"] = {
                        name: statements(cluster, READS) - before[name] for name, cluster in servers.items()
                    }
                    return data

                return one

            results["rounds"] = run.alternate(
                "replicas list", {PRIMARY: load(alone, alone_proc), REPLICA: load(routed, routed_proc)}
            )
        results["summary"] = summary(results)
        s = results["summary"]
        run.log(
            f"  replicas: primary only {s[PRIMARY]['rps']:.0f} req/s, with a replica {s[REPLICA]['rps']:.0f}"
            f" req/s ({s['ratio']:.2f}x)"
        )
        return results
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


def summary(results: dict) -> dict:
    med = statistics.median
    out: dict = {}
    for side in (PRIMARY, REPLICA):
        rounds = [row[side] for row in results["rounds"]]
        requests = sum(r["requests"] for r in rounds) or 1
        out[side] = {
            "rps": med(r["rps"] for r in rounds),
            "p50_us": med(r["p50_us"] for r in rounds),
            "p99_us": med(r["p99_us"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds),
            "requests": requests,
            "primary_reads": sum(r["reads"]["primary"] for r in rounds) / requests,
            "standby_reads": sum(r["reads"]["standby"] for r in rounds) / requests,
        }
    out["ratio"] = out[REPLICA]["rps"] / out[PRIMARY]["rps"]
    return out


def _cpu(data: dict, group: str) -> str:
    value = data["cpu_ms"].get(group)
    return "–" if value is None else f"{value:.2f}"


def report(results: dict) -> list[str]:
    out = ["## Read replicas: the list with the primary alone and with a streaming replica", ""]
    if "skipped" in results:
        return [*out, f"Not run: {results['skipped']}.", ""]
    s = results["summary"]
    out += [
        f"{results['threads']:,} threads on a primary of the section's own (streaming replication on) and a hot"
        " standby made with `pg_basebackup -R`, both on this machine; two `manage.py serve` side by side, one"
        " with `DATABASE_URL` alone, one with `DATABASE_REPLICA_URLS` naming the standby; wrk sends"
        f" `GET /api/v1/threads?metadata.bucket=N&limit=20` (N one of {results['buckets']}) to each in"
        ' alternating rounds. "reads per request" counts the statements reading the thread table that each'
        " PostgreSQL server ran over the round (`pg_stat_statements`); CPU is ms per request of the server's"
        " processes and of each PostgreSQL server's.",
        "",
        "| round | side | req/s | p50 / p99 ms | errors | reads per request: primary / standby |"
        " CPU ms: server / primary / standby |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, row in enumerate(results["rounds"], 1):
        for side in (PRIMARY, REPLICA):
            d = row[side]
            requests = d["requests"] or 1
            out.append(
                f"| {n} | {side} | {d['rps']:.0f} | {d['p50_us'] / 1000:.1f} / {d['p99_us'] / 1000:.1f} |"
                f" {d['errors']} | {d['reads']['primary'] / requests:.2f} / {d['reads']['standby'] / requests:.2f}"
                f" | {_cpu(d, 'server')} / {_cpu(d, 'primary')} / {_cpu(d, 'standby')} |"
            )
    a, b = s[PRIMARY], s[REPLICA]
    out += [
        "",
        f"Median: primary only {a['rps']:.0f} req/s (p99 {a['p99_us'] / 1000:.1f} ms), with the replica"
        f" {b['rps']:.0f} req/s (p99 {b['p99_us'] / 1000:.1f} ms): **{s['ratio']:.2f}x**. With the replica"
        f" configured the list's reads ran {b['standby_reads']:.2f} per request on the standby and"
        f" {b['primary_reads']:.2f} on the primary. One machine: the replica moves the reads but adds no"
        " cores; on a machine of its own it takes their CPU off the primary.",
        "",
    ]
    return out
