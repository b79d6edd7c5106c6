"""The ``webhooks`` section of the benchmark suite (``BENCH_SECTIONS=webhooks``), run by run.py.

(a) PATCH throughput under wrk with 3 active webhook endpoints (no worker running, so their
    deliveries pile up unsent) against none, in alternating rounds: endpoints add nothing to a
    PATCH's request path, so the two must be within noise.
(b) ``manage.py deliver_webhooks`` delivering a stream of PATCHes to a local receiver: the
    worker's CPU seconds per delivered event, and the latency from an event's commit time
    (its ``createdAt``) to its arrival at the receiver, p50 and p99.

Django-side steps run as ``python bench/webhooks.py endpoints COUNT URL`` with the benchmark's
DATABASE_URL (sets the ``bench-main`` organization's endpoints to COUNT, all pointing at URL).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = {"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8"}


class Receiver:
    """Answers 204 to every POST on 127.0.0.1 and notes when each event arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[int, tuple[float, str]] = {}  # event id -> (arrival, createdAt)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals.setdefault(body["data"]["id"], (time.time(), body["data"]["createdAt"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_endpoints(run, database_url: str, count: int, url: str) -> None:
    proc = run.run(
        [sys.executable, __file__, "endpoints", str(count), url], 120, env={**run.django_env(database_url), **LOOPBACK}
    )
    if proc.returncode:
        raise RuntimeError(f"setting webhook endpoints failed: {proc.stderr[-2000:]}")


def patch_stream(base: str, key: str, ids: list[str], count: int) -> None:
    """``count`` PATCHes, one after another, spread over the threads, each a change (an event)."""
    run_id = time.time_ns()
    for n in range(count):
        request = urllib.request.Request(
            f"{base}/api/v1/threads/{ids[n % len(ids)]}",
            method="PATCH",
            data=json.dumps({"metadata": {"w": f"{run_id}-{n}"}}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=30).read()


def section(run, info: dict) -> dict:
    database_url = f"{run.PG}/{run.PG_DB}"
    stride = max(1, run.THREADS // run.SPREAD)
    ids = [run.seed.thread_id("bench-main", stride * i) for i in range(run.SPREAD)]
    ids_file = run.OUT / "webhooks.ids"
    ids_file.write_text("\n".join(ids) + "\n")
    receiver = Receiver()
    results: dict = {"rounds": []}
    try:
        with run.serve(database_url, info["key"]) as (base, server):
            pids = run.children(server.pid)
            run.wrk(base, "/api/v1/threads/", ids_file, info["key"], 3)  # warm-up
            for r in range(run.ROUNDS):
                row = {}
                for endpoints in (0, 3) if r % 2 == 0 else (3, 0):  # A/B, then B/A
                    set_endpoints(run, database_url, endpoints, receiver.url)
                    row[f"endpoints_{endpoints}"] = data = run.wrk(
                        base, "/api/v1/threads/", ids_file, info["key"], run.DURATION, pids
                    )
                    run.log(
                        f"  round {r + 1}, {endpoints} endpoints: {data['rps']:.0f} req/s, "
                        f"p99 {data['p99_us'] / 1000:.1f} ms, server CPU {data['server_cpu_ms'] or 0:.2f} ms/request"
                    )
                row["ratio"] = row["endpoints_3"]["rps"] / row["endpoints_0"]["rps"]
                results["rounds"].append(row)
            results["delivery"] = delivery(run, database_url, base, info["key"], ids, receiver)
    finally:
        receiver.close()
        set_endpoints(run, database_url, 0, receiver.url)
    return results


def delivery(run, database_url: str, base: str, key: str, ids: list[str], receiver: Receiver) -> dict:
    """One endpoint, one worker, ``EVENTS`` PATCHes: the worker's CPU per event and the latency."""
    events = int(os.environ.get("BENCH_WEBHOOK_EVENTS") or (500 if run.QUICK else 3000))
    set_endpoints(run, database_url, 1, receiver.url)  # a new endpoint: only events from now on
    receiver.arrivals.clear()
    worker = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "deliver_webhooks"],
        cwd=ROOT,
        env={**run.django_env(database_url), **LOOPBACK},
        start_new_session=True,
        stdout=open(run.OUT / "deliver_webhooks.log", "a"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(2)  # started and idle
        cpu = run.cpu_seconds([worker.pid])
        started = time.monotonic()
        patch_stream(base, key, ids, events)
        deadline = time.monotonic() + 300
        while len(receiver.arrivals) < events and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu = run.cpu_seconds([worker.pid]) - cpu
    finally:
        run.stop(worker, "deliver_webhooks")
    latencies = sorted(at - datetime.fromisoformat(created).timestamp() for at, created in receiver.arrivals.values())
    delivered = len(latencies)
    result = {
        "events": events,
        "delivered": delivered,
        "seconds": elapsed,
        "worker_cpu_ms_per_event": cpu * 1000 / delivered if delivered else None,
        "latency_p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "latency_p99_ms": latencies[int(0.99 * (delivered - 1))] * 1000 if latencies else None,
    }
    run.log(
        f"  delivery: {delivered}/{events} events, worker CPU {result['worker_cpu_ms_per_event'] or 0:.2f} ms/event, "
        f"latency p50 {result['latency_p50_ms'] or 0:.0f} ms, p99 {result['latency_p99_ms'] or 0:.0f} ms"
    )
    return result


def report(results: dict) -> list[str]:
    """The section of RESULTS.md."""
    out = [
        "## Webhooks",
        "",
        "PATCH of one metadata key on 1,000 threads under wrk, with 3 active webhook endpoints (no"
        " worker running: nothing is sent) and with none, in alternating rounds:",
        "",
        "| round | none: req/s | 3 endpoints: req/s | ratio | none: server CPU ms/req | 3: server CPU ms/req |",
        "|---|---|---|---|---|---|",
    ]
    for n, row in enumerate(results["rounds"], 1):
        none, three = row["endpoints_0"], row["endpoints_3"]
        out.append(
            f"| {n} | {none['rps']:.0f} | {three['rps']:.0f} | {row['ratio']:.2f} |"
            f" {none['server_cpu_ms'] or 0:.2f} | {three['server_cpu_ms'] or 0:.2f} |"
        )
    d = results.get("delivery")
    if d:
        out += [
            "",
            f"`manage.py deliver_webhooks` (one worker, default settings) delivering {d['events']:,} PATCH events,"
            f" made one after another, to one local receiver: {d['delivered']:,} delivered; worker CPU"
            f" **{d['worker_cpu_ms_per_event'] or 0:.2f} ms per delivered event**; from an event's `createdAt`"
            f" to its arrival p50 **{d['latency_p50_ms'] or 0:.0f} ms**, p99 **{d['latency_p99_ms'] or 0:.0f} ms**.",
        ]
    return [*out, ""]


def endpoints(count: int, url: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "threads_project.settings")
    import django

    django.setup()
    from threads.models import Organization
    from threads.webhooks.models import WebhookEndpoint
    from threads.webhooks.services import endpoint_create

    org = Organization.objects.get(slug="bench-main")
    WebhookEndpoint.objects.filter(organization=org).delete()
    for _ in range(count):
        endpoint_create(org=org, data={"url": url})


if __name__ == "__main__" and sys.argv[1:2] == ["endpoints"]:
    endpoints(int(sys.argv[2]), sys.argv[3])
