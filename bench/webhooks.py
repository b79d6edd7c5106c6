"""The ``webhooks`` section of the benchmark suite (``BENCH_SECTIONS=webhooks``), run by run.py.

(a) Wake: PATCH throughput under wrk through ``manage.py serve`` in alternating rounds: with no
    worker ("off"), with a worker polling the feed ("poll", the wake the worker uses; its one
    endpoint belongs to the other organization, so the rounds measure the wake alone), and with
    a NOTIFY trigger on the event insert ("notify", the alternative that was rejected).
(b) Latency: PATCHes paced at ``RATE`` events/s through ``manage.py serve``, one worker, a healthy
    local receiver; from an event's ``createdAt`` to its arrival, p50 and p99. Four runs: the
    healthy endpoint alone, and beside 2 hung endpoints (accept, never answer) and 1 refusing one
    in the same organization; each alone on the machine and with a wrk PATCH load on the other
    organization beside it (with that organization's own key: real writes and events); the
    machine's speed meanwhile (bench/probe.py).
(c) Throughput: a backlog made while no worker runs, then one worker delivering it to a fast
    local receiver (one endpoint, then four): deliveries/s from the first arrival to the last,
    and the worker's CPU per delivery.

Django-side steps run as ``python bench/webhooks.py endpoints ORG URL...`` with the benchmark's
DATABASE_URL (sets the organization's endpoints to those URLs).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import plain  # noqa: E402 - bench/ is on the path when run.py runs this

from tests.webhook_receiver import Hung, Receiver, refusing_url  # noqa: E402

LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}
RATE = 50  # events/s of the latency runs
TARGETS = {"p50_ms": 50, "p99_ms": 250, "deliveries_per_s": 500}
NOTIFY_ON = """
CREATE OR REPLACE FUNCTION bench_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('threads_event', NEW.organization_id::text); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS bench_event_notify ON threads_event;
CREATE TRIGGER bench_event_notify AFTER INSERT ON threads_event FOR EACH ROW EXECUTE FUNCTION bench_event_notify();
"""
NOTIFY_OFF = "DROP TRIGGER IF EXISTS bench_event_notify ON threads_event; DROP FUNCTION IF EXISTS bench_event_notify();"


def set_endpoints(run, database_url: str, org: str, urls: list[str]) -> None:
    proc = run.run(
        [sys.executable, __file__, "endpoints", org, *urls], 120, env={**run.django_env(database_url), **LOOPBACK}
    )
    if proc.returncode:
        raise RuntimeError(f"setting webhook endpoints failed: {proc.stderr[-2000:]}")


def start_worker(run, database_url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "deliver_webhooks"],
        cwd=ROOT,
        env={**run.django_env(database_url), **LOOPBACK},
        start_new_session=True,
        stdout=open(run.OUT / "deliver_webhooks.log", "a"),  # noqa: SIM115 - the child keeps it
        stderr=subprocess.STDOUT,
    )


def psql(run, database_url: str, sql: str) -> None:
    proc = run.run(["psql", database_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], 60)
    if proc.returncode:
        raise RuntimeError(f"psql failed: {proc.stderr[-1000:]}")


def ids_file(run, name: str, org: str, count: int, total: int) -> tuple[Path, list[str]]:
    stride = max(1, total // count)
    ids = [run.seed.thread_id(org, stride * i) for i in range(count)]
    path = run.OUT / f"webhooks-{name}.ids"
    path.write_text("\n".join(ids) + "\n")
    return path, ids


def section(run, info: dict) -> dict:
    database_url = f"{run.PG}/{run.PG_DB}"
    main_file, main_ids = ids_file(run, "main", "bench-main", run.SPREAD, run.THREADS)
    other_file, _ = ids_file(run, "other", "bench-other", min(run.SPREAD, run.OTHER_THREADS), run.OTHER_THREADS)
    receiver = Receiver()
    hung = [Hung(), Hung()]
    results: dict = {"rounds": [], "latency": [], "throughput": []}
    try:
        with run.serve(database_url, info["key"]) as (base, server):
            pids = run.children(server.pid)
            run.wrk(base, "/api/v1/threads/", main_file, info["key"], 3)  # warm-up
            results["rounds"] = wake_rounds(run, database_url, base, info["key"], main_file, pids, receiver)
            results["pgbench"] = notify_pgbench(run, database_url, info["org"])
            for with_others in (False, True):
                for background in (False, True):
                    results["latency"].append(
                        latency(
                            run,
                            database_url,
                            base,
                            info["key"],
                            info["other_key"],
                            main_ids,
                            other_file,
                            receiver,
                            hung,
                            with_others,
                            background,
                        )
                    )
            for endpoints in (1, 4):
                results["throughput"].append(
                    throughput(run, database_url, base, info["key"], main_file, receiver, endpoints)
                )
    finally:
        psql(run, database_url, NOTIFY_OFF)
        set_endpoints(run, database_url, "bench-main", [])
        set_endpoints(run, database_url, "bench-other", [])
        receiver.close()
        for h in hung:
            h.close()
    return results


def wake_rounds(run, database_url, base, key, main_file, pids, receiver) -> list[dict]:
    set_endpoints(run, database_url, "bench-main", [])
    set_endpoints(run, database_url, "bench-other", [receiver.url])  # the worker polls; nothing to send
    modes = ["off", "poll", "notify"]
    rounds = []
    for r in range(run.ROUNDS):
        row = {}
        for mode in modes if r % 2 == 0 else modes[::-1]:
            worker = start_worker(run, database_url) if mode == "poll" else None
            if mode == "notify":
                psql(run, database_url, NOTIFY_ON)
            try:
                if worker:
                    time.sleep(2)  # up and polling
                    worker_cpu = run.cpu_seconds([worker.pid])
                row[mode] = data = run.wrk(base, "/api/v1/threads/", main_file, key, run.DURATION, pids)
                if worker:
                    data["worker_cpu_ms"] = (run.cpu_seconds([worker.pid]) - worker_cpu) * 1000 / data["requests"]
            finally:
                if worker:
                    run.stop(worker, "deliver_webhooks")
                if mode == "notify":
                    psql(run, database_url, NOTIFY_OFF)
            run.log(
                f"  wake round {r + 1}, {mode}: {data['rps']:.0f} req/s, p99 {data['p99_us'] / 1000:.1f} ms,"
                f" server CPU {data['server_cpu_ms'] or 0:.2f} ms/request"
            )
        row["poll_ratio"] = row["poll"]["rps"] / row["off"]["rps"]
        row["notify_ratio"] = row["notify"]["rps"] / row["off"]["rps"]
        rounds.append(row)
    return rounds


def notify_pgbench(run, database_url: str, org: str) -> list[dict]:
    """The database's own PATCH rate (UPDATE + event INSERT a transaction, 16 clients) with and
    without the NOTIFY trigger, in alternating rounds: what the trigger costs where the server is
    not the limit."""
    stride = max(1, run.THREADS // run.SPREAD)
    defines = {"org": org, "base": 0, "stride": stride, "spread": run.SPREAD}
    script = run.HERE / "pgbench" / "patch_event.sql"
    rounds = []
    for r in range(run.ROUNDS):
        row = {}
        for mode in ("off", "notify") if r % 2 == 0 else ("notify", "off"):
            if mode == "notify":
                psql(run, database_url, NOTIFY_ON)
            try:
                row[mode] = run.pgbench_run(script, defines, run.DURATION, run.PG_DB)["tps"]
            finally:
                psql(run, database_url, NOTIFY_OFF)
            run.log(f"  pgbench round {r + 1}, {mode}: {row[mode]:.0f} tps")
        row["ratio"] = row["notify"] / row["off"]
        rounds.append(row)
    return rounds


class Paced:
    """PATCHes at ``rate`` a second on one kept-alive connection, each a change (an event)."""

    def __init__(self, base: str, key: str, ids: list[str]) -> None:
        self.host, self.port = base.removeprefix("http://").split(":")
        self.key, self.ids = key, ids
        self.errors = 0

    def run(self, rate: int, seconds: float) -> int:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        run_id, sent, started = time.time_ns(), 0, time.monotonic()
        count = int(rate * seconds)
        for n in range(count):
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"metadata": {"w": f"{run_id}-{n}"}})
            headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
            try:
                conn.request("PATCH", f"/api/v1/threads/{self.ids[n % len(self.ids)]}", body, headers)
                response = conn.getresponse()
                response.read()
                sent += response.status == 200
                self.errors += response.status != 200
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, int(self.port), timeout=30)
        conn.close()
        return sent


def latency(run, database_url, base, key, other_key, ids, other_file, receiver, hung, with_others, background) -> dict:
    """``key`` PATCHes the paced threads (``ids``), ``other_key`` the other organization's for the load beside."""
    seconds = 10 if run.QUICK else 60
    urls = [receiver.url] + ([h.url for h in hung] + [refusing_url()] if with_others else [])
    set_endpoints(run, database_url, "bench-main", urls)
    set_endpoints(run, database_url, "bench-other", [])
    receiver.received.clear()
    worker = start_worker(run, database_url)
    load, loaded = None, {}
    try:
        time.sleep(2)  # up and idle
        if background:
            load = threading.Thread(
                target=lambda: loaded.update(run.wrk(base, "/api/v1/threads/", other_file, other_key, seconds + 2))
            )
            load.start()
            time.sleep(1)
        # The machine's speed meanwhile (bench/probe.py): a shared machine's cores slow down and
        # speed up, and every step of a delivery with them.
        prober = run.start_probe(seconds)
        paced = Paced(base, key, ids)
        sent = paced.run(RATE, seconds)
        probe = run.probe_reading(prober)
        deadline = time.monotonic() + 30
        while len(receiver.event_ids()) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        if load:
            load.join()
    finally:
        run.stop(worker, "deliver_webhooks")
    latencies = sorted(
        r.at - datetime.fromisoformat(r.body["data"]["createdAt"]).timestamp()
        for r in receiver.received
        if r.body["type"].startswith("thread.")
    )
    result = {
        "with_others": with_others,
        "background": background,
        "seconds": seconds,
        "sent": sent,
        "delivered": len(receiver.event_ids()),
        "p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000 if latencies else None,
        "max_ms": latencies[-1] * 1000 if latencies else None,
        "paced_errors": paced.errors,
        "probe": probe,  # as wrk_run keeps it: plain.py's readers show it
        # The load beside: PATCHes of the other organization's threads (each a write and an event).
        "load_rps": loaded.get("rps"),
        "load_errors": loaded.get("errors"),
    }
    run.log(
        f"  latency, {'with 2 hung + 1 refusing' if with_others else 'healthy only'},"
        f" {'wrk PATCH load beside' if background else 'no other load'}: {result['delivered']}/{sent} delivered,"
        f" p50 {result['p50_ms'] or 0:.1f} ms, p99 {result['p99_ms'] or 0:.1f} ms, max {result['max_ms'] or 0:.0f} ms"
        + (f"; load {result['load_rps']:.0f} req/s, {result['load_errors']} errors" if load else "")
    )
    return result


def throughput(run, database_url, base, key, main_file, receiver, endpoints: int) -> dict:
    set_endpoints(run, database_url, "bench-other", [])
    set_endpoints(run, database_url, "bench-main", [f"{receiver.url}/{n}" for n in range(endpoints)])
    run.wrk(base, "/api/v1/threads/", main_file, key, 2 if run.QUICK else 4)  # the backlog
    receiver.received.clear()
    worker = start_worker(run, database_url)
    try:
        deadline = time.monotonic() + 300
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.01)
        first_cpu = last_cpu = run.cpu_seconds([worker.pid])
        seen, quiet = 0, time.monotonic()
        while time.monotonic() - quiet < 3 and time.monotonic() < deadline:  # until 3 s without an arrival
            time.sleep(0.05)
            if len(receiver.received) != seen:  # the CPU up to the last arrival seen
                seen, quiet, last_cpu = len(receiver.received), time.monotonic(), run.cpu_seconds([worker.pid])
        cpu = last_cpu - first_cpu
    finally:
        run.stop(worker, "deliver_webhooks")
    got = list(receiver.received)
    span = got[-1].at - got[0].at if len(got) > 1 else 0
    want = endpoints * len({r.body["data"]["id"] for r in got})
    result = {
        "endpoints": endpoints,
        "expected": want,
        "delivered": len(got),
        "seconds": span,
        "per_second": (len(got) - 1) / span if span else None,
        "worker_cpu_ms": cpu * 1000 / (len(got) - 1) if len(got) > 1 else None,
    }
    run.log(
        f"  throughput, {endpoints} endpoint(s): {len(got)}/{want} in {span:.1f} s ="
        f" {result['per_second'] or 0:.0f} deliveries/s, worker CPU {result['worker_cpu_ms'] or 0:.2f} ms/delivery"
    )
    return result


def _median(rows: list[dict], mode: str, field: str = "rps") -> float:
    return statistics.median(row[mode][field] or 0 for row in rows)


def report(results: dict) -> list[str]:
    """The section of RESULTS.md."""
    out = ["## Webhooks", ""]
    lat = results.get("latency") or []
    thr = results.get("throughput") or []
    rounds = results.get("rounds") or []
    if lat or thr or rounds:
        out += ["| target | figure | |", "|---|---|---|"]
        for row in lat:
            label = ("healthy beside 2 hung + 1 refusing" if row["with_others"] else "healthy alone") + (
                ", wrk PATCH load beside" if row["background"] else ""
            )
            ok = row["p50_ms"] is not None and row["p50_ms"] <= TARGETS["p50_ms"] and row["p99_ms"] <= TARGETS["p99_ms"]
            out.append(
                f"| commit-to-arrival p50 ≤ 50 ms, p99 ≤ 250 ms at {RATE} events/s ({label}) |"
                f" p50 {row['p50_ms'] or 0:.1f} ms, p99 {row['p99_ms'] or 0:.1f} ms ({row['delivered']}/{row['sent']})"
                f" | {'**met**' if ok else '**not met**'} |"
            )
        for row in thr:
            ok = (row["per_second"] or 0) >= TARGETS["deliveries_per_s"]
            out.append(
                f"| one worker ≥ 500 deliveries/s ({row['endpoints']} endpoint(s) at one local receiver) |"
                f" {row['per_second'] or 0:.0f}/s, worker CPU {row['worker_cpu_ms'] or 0:.2f} ms/delivery"
                f" | {'**met**' if ok else '**not met**'} |"
            )
        if rounds:
            poll, notify = (statistics.median(r[f"{mode}_ratio"] for r in rounds) for mode in ("poll", "notify"))
            out.append(
                f"| PATCH throughput, wake on within noise of off | poll {_median(rounds, 'poll'):.0f} req/s vs off"
                f" {_median(rounds, 'off'):.0f} (x{poll:.2f}); NOTIFY trigger {_median(rounds, 'notify'):.0f}"
                f" (x{notify:.2f}) | |"
            )
        if pg := results.get("pgbench"):
            off, on, ratio = (statistics.median(r[k] for r in pg) for k in ("off", "notify", "ratio"))
            out.append(
                f"| (the NOTIFY trigger where the database is the limit: pgbench) | without {off:.0f} tps,"
                f" with {on:.0f} (x{ratio:.2f}) | |"
            )
        out.append("")
    if rounds:
        out += [
            "PATCH of one metadata key on 1,000 threads under wrk through `manage.py serve`, in alternating"
            " rounds: no worker (off); a worker polling the feed every 5 ms, the wake it uses (poll; its one"
            " endpoint is in the other organization, so only the wake runs); a `pg_notify` trigger on the event"
            " insert (notify, the alternative not taken):",
            "",
            "| round | off req/s | poll req/s | notify req/s | poll/off | notify/off | worker CPU ms per PATCH |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, row in enumerate(rounds, 1):
            out.append(
                f"| {n} | {row['off']['rps']:.0f} | {row['poll']['rps']:.0f} | {row['notify']['rps']:.0f} |"
                f" {row['poll_ratio']:.2f} | {row['notify_ratio']:.2f} | {row['poll'].get('worker_cpu_ms') or 0:.3f} |"
            )
        out.append("")
    if pg := results.get("pgbench"):
        out += [
            "The same PATCH's two writes (the thread's UPDATE and its event's INSERT, one transaction;"
            " bench/pgbench/patch_event.sql) under pgbench, 16 clients, with and without the NOTIFY"
            " trigger, in alternating rounds: where the database and not the server is the limit, the"
            " notification queue's lock at commit serializes the commits.",
            "",
            "| round | without: tps | with NOTIFY: tps | ratio |",
            "|---|---|---|---|",
            *(f"| {n} | {r['off']:.0f} | {r['notify']:.0f} | {r['ratio']:.2f} |" for n, r in enumerate(pg, 1)),
            "",
        ]
    if lat:
        out += [
            f"Latency: PATCHes paced at {RATE}/s through `manage.py serve` (one kept-alive connection), one"
            " `deliver_webhooks` (default settings: 10 s timeout); from each event's `createdAt` (stamped"
            " inside its transaction, just before the commit) to its arrival at a local receiver. The load"
            " beside is wrk PATCHing the other organization's threads with that organization's key (each a"
            " write and an event); the probe is bench/probe.py's unit of pure-Python work over the run"
            " (µs, higher is a slower machine):",
            "",
            "| endpoints in the organization | load beside | delivered | p50 ms | p99 ms | max ms"
            " | load req/s (errors) | probe µs | steal |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in lat:
            load = f"{row['load_rps']:.0f} ({row['load_errors']})" if row.get("load_rps") is not None else "-"
            out.append(
                f"| {'healthy + 2 hung + 1 refusing' if row['with_others'] else 'healthy'} |"
                f" {'wrk PATCH, other organization' if row['background'] else 'none'} |"
                f" {row['delivered']}/{row['sent']} | {row['p50_ms'] or 0:.1f} | {row['p99_ms'] or 0:.1f} |"
                f" {row['max_ms'] or 0:.0f} | {load} | {plain._probe(row)} | {plain._steal(row)} |"
            )
        out.append("")
    if thr:
        out += [
            "Throughput: a backlog of PATCH events made with no worker running, then one `deliver_webhooks`"
            " delivering it to one local receiver (kept-alive connections, at most 2 in flight per endpoint);"
            " deliveries/s from the first arrival to the last, worker CPU (user + system) per delivery:",
            "",
            "| endpoints | deliveries | seconds | deliveries/s | worker CPU ms/delivery |",
            "|---|---|---|---|---|",
        ]
        for row in thr:
            out.append(
                f"| {row['endpoints']} | {row['delivered']:,}/{row['expected']:,} | {row['seconds']:.1f} |"
                f" {row['per_second'] or 0:.0f} | {row['worker_cpu_ms'] or 0:.2f} |"
            )
        out.append("")
    return out


def endpoints(org_slug: str, urls: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")
    import django

    django.setup()
    from threads.models import Organization
    from threads.webhooks.models import WebhookEndpoint
    from threads.webhooks.services import endpoint_create

    org = Organization.objects.get(slug=org_slug)
    WebhookEndpoint.objects.filter(organization=org).delete()
    for url in urls:
        endpoint_create(org=org, data={"url": url})


if __name__ == "__main__" and sys.argv[1:2] == ["endpoints"]:
    endpoints(sys.argv[2], sys.argv[3:])
