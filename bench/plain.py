"""The ``plain`` section of the benchmark suite (``BENCH_SECTIONS=plain``), run by run.py: the PATCH
comparison as a user would make it, and what PostgreSQL does per PATCH round by round.

Both sides start empty and hold only the threads they patch: the peer is a new ``langgraph dev``
given the 200 threads, ours a new database (``BENCH_PLAIN_DB``, dropped and made again) seeded with
the same 200. Two cases, each ``PLAIN_ROUNDS`` alternating rounds (A/B, then B/A) of
``PLAIN_DURATION`` seconds, 16 connections, wrk: a PATCH of one metadata key to the 200 threads in
turn, and to one thread. Nothing is vacuumed between rounds (a decay must show). For each of our
rounds: CPU per PATCH of our server and of PostgreSQL's backends, the heap tuples written and the
share of HOT updates (pg_stat_user_tables), WAL bytes per PATCH (pg_current_wal_lsn, the whole
cluster's), and the growth of every index of the two tables. Then a soak: ours alone for
``PLAIN_SOAK`` seconds over the 200 threads, minute by minute, with the index sizes before and after.
"""

from __future__ import annotations

import json
import os
import statistics
import time

DB = os.environ.get("BENCH_PLAIN_DB") or "hbench_plain"
THREADS = 200
SPREAD, HOT = "200", "one"
CASES = {SPREAD: "200 threads in turn", HOT: "one thread"}

STATS_SQL = """
SELECT json_build_object(
 'tables', (SELECT json_object_agg(relname, json_build_object('ins', n_tup_ins, 'upd', n_tup_upd,
     'hot', n_tup_hot_upd, 'dead', n_dead_tup, 'autovacuum', autovacuum_count, 'size', pg_relation_size(relid)))
   FROM pg_stat_user_tables WHERE relname IN ('threads_thread', 'threads_event')),
 'indexes', (SELECT json_object_agg(indexrelname, pg_relation_size(indexrelid))
   FROM pg_stat_user_indexes WHERE relname IN ('threads_thread', 'threads_event')),
 'wal', pg_current_wal_lsn() - '0/0'::pg_lsn)
"""


def _knob(run, name: str, default: int, quick: int) -> int:
    return run._int(name, default, quick)


def stats(run, url: str, settle: bool = False) -> dict:
    """The two tables' counters, index sizes and the WAL position; ``settle``: after a load, once
    the backends have reported their counters (they do at most once a second)."""
    if settle:
        time.sleep(1.5)
    return json.loads(run.run(["psql", url, "-Atc", STATS_SQL], 60).stdout)


def per_patch(before: dict, after: dict, requests: int) -> dict:
    """What one PATCH cost the database over a load, from the counters before and after it."""
    thread = {k: after["tables"]["threads_thread"][k] - before["tables"]["threads_thread"][k] for k in ("upd", "hot")}
    events = after["tables"]["threads_event"]["ins"] - before["tables"]["threads_event"]["ins"]
    n = max(requests, 1)
    return {
        "heap_tuples": (thread["upd"] + events) / n,
        "hot_ratio": thread["hot"] / thread["upd"] if thread["upd"] else None,
        "wal_bytes": (float(after["wal"]) - float(before["wal"])) / n,
        "dead_tuples": after["tables"]["threads_thread"]["dead"],
        "autovacuums": after["tables"]["threads_thread"]["autovacuum"],
        "index_growth_kib": {
            name: (size - before["indexes"].get(name, 0)) // 1024 for name, size in after["indexes"].items()
        },
    }


def section(run) -> dict:
    rounds, duration = _knob(run, "BENCH_PLAIN_ROUNDS", 5, 3), _knob(run, "BENCH_PLAIN_DURATION", 10, 5)
    soak = _knob(run, "BENCH_PLAIN_SOAK", 600, 30)
    url = f"{run.PG}/{DB}"
    run.run(["psql", f"{run.PG}/postgres", "-qc", f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'], 120)
    run.ensure_pg_database(DB)
    info = run.prepare(url, THREADS, 0)
    ours = {SPREAD: [run.seed.thread_id("bench-main", n) for n in range(THREADS)]}
    ours[HOT] = ours[SPREAD][:1]
    files = {}
    for case, ids in ours.items():
        files[case] = run.OUT / f"plain-ours-{case}.ids"
        files[case].write_text("\n".join(ids) + "\n")
    results: dict = {"threads": THREADS, "rounds": rounds, "duration_s": duration, "cases": {}}
    with run.peer_server() as (peer, peer_pids):
        results["peer_available"] = peer is not None
        if peer:
            peer_ids = run.peer_threads(peer, THREADS)
            for case, ids in ((SPREAD, peer_ids), (HOT, peer_ids[:1])):
                files[f"peer-{case}"] = run.OUT / f"plain-peer-{case}.ids"
                files[f"peer-{case}"].write_text("\n".join(ids) + "\n")
        with run.serve(url, info["key"]) as (base, proc):
            cpu_of = {"server": lambda: run.tree(proc.pid), "postgres": lambda: run.pg_backends(DB)}

            def load(case: str, seconds: int) -> dict:
                before = stats(run, url)
                data = run.wrk_run(
                    base, "patch.lua", [str(files[case]), "/api/v1/threads/", info["key"]], seconds, cpu_of, probe=True
                )
                data["db"] = per_patch(before, stats(run, url, settle=True), data["requests"])
                return data

            def peer_load(case: str, seconds: int) -> dict:
                cpu = {"peer": lambda: [p for pid in peer_pids for p in run.tree(pid)]}
                return run.wrk_run(
                    peer, "patch.lua", [str(files[f"peer-{case}"]), "/threads/", ""], seconds, cpu, probe=True
                )

            for case in CASES:
                load(case, 3)  # warm-up: connections, prepared statements
                if peer:
                    peer_load(case, 3)
                indexes_before = stats(run, url)["indexes"]
                rows = []
                for r in range(rounds):
                    row = {}
                    order = ["ours", "peer"] if peer else ["ours"]
                    for side in order if r % 2 == 0 else order[::-1]:
                        row[side] = data = load(case, duration) if side == "ours" else peer_load(case, duration)
                        extra = (
                            f", PostgreSQL CPU {data['cpu_ms']['postgres']:.2f} ms, HOT"
                            f" {100 * (data['db']['hot_ratio'] or 0):.0f}%, WAL {data['db']['wal_bytes']:.0f} B"
                            if side == "ours"
                            else ""
                        )
                        run.log(
                            f"  plain {case}, round {r + 1} {side}: {data['rps']:.0f} req/s, p99"
                            f" {data['p99_us'] / 1000:.1f} ms, errors {data['errors']}{extra}"
                        )
                    if peer:
                        row["ratio"] = row["ours"]["rps"] / row["peer"]["rps"]
                    rows.append(row)
                results["cases"][case] = {
                    "rounds": rows,
                    "indexes_before": indexes_before,
                    "indexes_after": stats(run, url)["indexes"],
                }
    if soak:  # ours alone: the peer has stopped
        results["soak"] = soak_run(run, url, info["key"], files[SPREAD], soak)
    return results


def soak_run(run, url: str, key: str, ids_file, seconds: int) -> dict:
    """Ours alone over the 200 threads for ``seconds``, a minute (or less) a segment."""
    segment = min(60, seconds)
    out: dict = {"seconds": seconds, "segments": []}
    with run.serve(url, key) as (base, proc):
        cpu_of = {"server": lambda: run.tree(proc.pid), "postgres": lambda: run.pg_backends(DB)}
        first = stats(run, url)
        out["indexes_before"], out["tables_before"] = first["indexes"], first["tables"]
        for n in range(max(1, seconds // segment)):
            before = stats(run, url)
            data = run.wrk_run(base, "patch.lua", [str(ids_file), "/api/v1/threads/", key], segment, cpu_of, probe=True)
            data["db"] = per_patch(before, stats(run, url, settle=True), data["requests"])
            out["segments"].append(data)
            run.log(
                f"  soak {n + 1}: {data['rps']:.0f} req/s, p99 {data['p99_us'] / 1000:.1f} ms, errors"
                f" {data['errors']}, PostgreSQL CPU {data['cpu_ms']['postgres']:.2f} ms, dead tuples"
                f" {data['db']['dead_tuples']:,}, autovacuums {data['db']['autovacuums']}, server CPU"
                f" {data['cpu_ms']['server']:.2f} ms, probe {data['probe']['unit_us']:.0f} µs a unit, steal"
                f" {data['probe']['steal_pct']:.1f}%"
            )
        final = stats(run, url)
        out["indexes_after"], out["tables_after"] = final["indexes"], final["tables"]
    return out


# --- the report ------------------------------------------------------------------------------


def summary(case: dict) -> dict:
    rows = case["rounds"]
    ours = [row["ours"] for row in rows]
    ratios = [row["ratio"] for row in rows if "ratio" in row]
    med = statistics.median
    return {
        "rps": med(o["rps"] for o in ours),
        "first": ours[0]["rps"],
        "last": ours[-1]["rps"],
        "p99": med(o["p99_us"] for o in ours),
        "errors": sum(o["errors"] for o in ours) + sum(row["peer"]["errors"] for row in rows if "peer" in row),
        "requests": sum(o["requests"] for o in ours),
        "peer_rps": med(row["peer"]["rps"] for row in rows) if ratios else None,
        "peer_p99": med(row["peer"]["p99_us"] for row in rows) if ratios else None,
        "ratio": med(ratios) if ratios else None,
    }


BARS = {SPREAD: 1.2, HOT: 0.8}


def _probe_reading(data: dict, name: str) -> float | None:
    """One of bench/probe.py's readings over a load (``unit_us``, ``steal_pct``), if it ran."""
    return (data.get("probe") or {}).get(name)


def _probe(data: dict) -> str:
    unit = _probe_reading(data, "unit_us")
    return "-" if unit is None else f"{unit:.0f}"


def _steal(data: dict) -> str:
    steal = _probe_reading(data, "steal_pct")
    return "-" if steal is None else f"{steal:.1f}%"


def _in_probe_units(data: dict) -> float | None:
    """Our server's CPU per PATCH over the probe's CPU per unit in the same minute."""
    unit = _probe_reading(data, "unit_us")
    return data["cpu_ms"]["server"] * 1000 / unit if unit else None


def _flat_in_probe_units(target: str, bar: str, first: dict, last: dict) -> list[tuple[str, str, str, bool]]:
    """The targets row for our server's CPU per PATCH, machine speed taken out, from the first load
    to the last (none when the probe did not run)."""
    costs = [_in_probe_units(first), _in_probe_units(last)]
    if None in costs:
        return []
    measured = f"{costs[0]:.3f} -> {costs[1]:.3f} probe units ({costs[1] / costs[0]:.2f}x)"
    return [(target, bar, measured, costs[1] <= 1.1 * costs[0])]


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, bar, measured, met) rows for RESULTS.md's table."""
    rows = []
    for case, label in CASES.items():
        if case not in results.get("cases", {}):
            continue
        s = summary(results["cases"][case])
        ratio = None if s["ratio"] is None else s["ratio"] >= BARS[case]
        measured = f"{s['ratio']:.2f}x ({s['rps']:.0f} vs {s['peer_rps']:.0f} req/s)" if s["ratio"] else "peer not run"
        rows.append((f"plain PATCH, {label}", f">= {BARS[case]}x the peer (started empty)", measured, ratio))
        if s["peer_p99"]:
            rows.append(
                (
                    f"plain PATCH, {label}: p99",
                    "no worse than the peer's",
                    f"{s['p99'] / 1000:.1f} ms vs {s['peer_p99'] / 1000:.1f} ms",
                    s["p99"] <= s["peer_p99"],
                )
            )
        rows.append((f"plain PATCH, {label}: errors", "0", f"{s['errors']} of {s['requests']:,}", s["errors"] == 0))
        rows.append(
            (
                f"plain PATCH, {label}: no decay",
                "last round within 10% of the first",
                f"{s['first']:.0f} -> {s['last']:.0f} req/s ({s['last'] / s['first']:.2f}x)",
                s["last"] >= 0.9 * s["first"],
            )
        )
        rounds = results["cases"][case]["rounds"]
        rows += _flat_in_probe_units(
            f"plain PATCH, {label}: no decay, machine speed taken out",
            "our server's CPU per PATCH in probe units, last round within 10% of the first",
            rounds[0]["ours"],
            rounds[-1]["ours"],
        )
    soak = results.get("soak")
    if soak and soak["segments"]:
        first, last = soak["segments"][0]["rps"], soak["segments"][-1]["rps"]
        total = sum(seg["requests"] for seg in soak["segments"])
        rows.append(
            (
                f"soak, {soak['seconds'] // 60} min over 200 threads",
                "last minute within 10% of the first, 100,000+ PATCHes",
                f"{first:.0f} -> {last:.0f} req/s ({last / first:.2f}x), {total:,} PATCHes",
                last >= 0.9 * first and total >= 100_000,
            )
        )
        rows += _flat_in_probe_units(
            f"soak, {soak['seconds'] // 60} min: our server's CPU per PATCH, machine speed taken out",
            "last minute within 10% of the first",
            soak["segments"][0],
            soak["segments"][-1],
        )
    return rows


def _kib(sizes: dict) -> int:
    return sum(sizes.values()) // 1024


def report(results: dict) -> list[str]:
    out = [
        "## PATCH, the plain comparison (peer started empty)",
        "",
        f"Both sides start empty and hold only the {results['threads']} threads they patch (ours: a new"
        " database; the peer: a new `langgraph dev`); 16 connections; ours and the peer in alternating"
        f" rounds of {results['duration_s']} s; nothing vacuumed between rounds. Each request sets one"
        " metadata key to a new value. Ours: CPU per PATCH of our server's processes and of PostgreSQL's"
        " backends; heap tuples written per PATCH (thread versions + events) and the share of HOT updates"
        " (pg_stat_user_tables); WAL bytes per PATCH (the whole cluster's, so other work on the machine"
        " adds to it).",
        "",
    ]
    for case, label in CASES.items():
        if case not in results.get("cases", {}):
            continue
        data = results["cases"][case]
        s = summary(data)
        out += [
            f"### {label}",
            "",
            "| round | ours req/s | p50 / p99 ms | CPU ms: server / PostgreSQL | heap tuples | HOT | WAL B |"
            " peer req/s | p50 / p99 ms | ours/peer | probe µs: ours / peer |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, row in enumerate(data["rounds"], 1):
            o, db = row["ours"], row["ours"]["db"]
            p = row.get("peer")
            peer = (
                f" {p['rps']:.0f} | {p['p50_us'] / 1000:.1f} / {p['p99_us'] / 1000:.1f} | {row['ratio']:.2f}x |"
                f" {_probe(o)} / {_probe(p)} |"
                if p
                else f" - | - | - | {_probe(o)} / - |"
            )
            out.append(
                f"| {n} | {o['rps']:.0f} | {o['p50_us'] / 1000:.1f} / {o['p99_us'] / 1000:.1f} |"
                f" {o['cpu_ms']['server']:.2f} / {o['cpu_ms']['postgres']:.2f} | {db['heap_tuples']:.2f} |"
                f" {100 * (db['hot_ratio'] or 0):.0f}% | {db['wal_bytes']:.0f} |{peer}"
            )
        ratio = f"**{s['ratio']:.2f}x**" if s["ratio"] else "not measured (no peer)"
        out += [
            "",
            f"Median: ours {s['rps']:.0f} req/s, peer {s['peer_rps'] or 0:.0f} req/s, ratio {ratio};"
            f" ours from the first round to the last {s['first']:.0f} -> {s['last']:.0f} req/s"
            f" ({s['last'] / s['first']:.2f}x). Indexes of the two tables: {_kib(data['indexes_before']):,} KiB"
            f" before, {_kib(data['indexes_after']):,} KiB after.",
            "",
        ]
    soak = results.get("soak")
    if soak and soak["segments"]:
        out += [
            f"### Soak: ours alone, {soak['seconds']} s over the 200 threads",
            "",
            "| minute | req/s | p99 ms | errors | CPU ms: server / PostgreSQL | dead tuples | autovacuums |"
            " probe µs | steal | server CPU in probe units |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for n, seg in enumerate(soak["segments"], 1):
            cost = _in_probe_units(seg)
            out.append(
                f"| {n} | {seg['rps']:.0f} | {seg['p99_us'] / 1000:.1f} | {seg['errors']} |"
                f" {seg['cpu_ms']['server']:.2f} / {seg['cpu_ms']['postgres']:.2f} |"
                f" {seg['db']['dead_tuples']:,} | {seg['db']['autovacuums']} | {_probe(seg)} |"
                f" {_steal(seg)} | {'-' if cost is None else f'{cost:.3f}'} |"
            )
        total = sum(seg["requests"] for seg in soak["segments"])
        out += [
            "",
            "The probe (bench/probe.py) times one fixed unit of pure-Python work in CPU time every half"
            " second while the load runs: when the shared machine's cores slow down, its µs rise with our"
            " server's CPU per PATCH. The last column is the server's CPU per PATCH over the probe's unit:"
            " our server's own cost with the machine's speed taken out; a defect of ours (a cache that"
            " grows, a query that slows) raises it, a slower machine does not.",
            "",
            f"{total:,} PATCHes. Index sizes before and after:",
            "",
            "| index | before KiB | after KiB |",
            "|---|---|---|",
        ]
        for name in sorted(soak["indexes_after"]):
            out.append(
                f"| {name} | {soak['indexes_before'].get(name, 0) // 1024:,} |"
                f" {soak['indexes_after'][name] // 1024:,} |"
            )
        out.append("")
    return out
