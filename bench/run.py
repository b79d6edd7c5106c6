"""The benchmark suite (issue 7). ``make bench`` runs it; ``make bench BENCH_QUICK=1`` is a short run.

Sections (``BENCH_SECTIONS=plain,parity,patch,list,memory,webhooks,ops,replicas``, all by default):

- parity: issue 12's three cases over 5,000 threads against the in-memory peer, in alternating
          rounds: a PATCH on 200 threads in turn, a PATCH on one hot thread, and a list page of 20
          with one metadata filter (the peer: ``POST /threads/search``); pgbench on the same rows
          and query as the database's limit; a variant runs the 200-thread case under
          ``manage.py serve`` and gunicorn in alternating rounds.
- patch:  the service under `manage.py serve` (DEBUG off, PostgreSQL, API-key auth, history on) loaded by
          wrk with a merge PATCH of one metadata key, on one thread and on 1,000 threads; pgbench
          with the same jsonb UPDATE as the database's own limit; the LangGraph API server (the
          in-memory peer) under the same load in alternating A/B rounds.
- list:   the list API's first page and a deep cursor page over 1,000,000 threads on PostgreSQL
          and 100,000 on SQLite, p50/p99 and the EXPLAIN plan of each query.
- memory: a server worker's RSS sampled from /proc while it serves 100,000 PATCH requests.
- webhooks: PATCH throughput with the worker's wake (a feed poll) on and off and with a NOTIFY
          trigger (wrk, and pgbench for the trigger); commit-to-arrival p50/p99 at 50 events/s
          with and without hung and refusing endpoints, with and without PATCH load beside; one
          worker's deliveries/s and CPU per delivery (bench/webhooks.py).
- ops:    the operator list and the admin changelists (threads, events) through ``manage.py serve``,
          at 1,000,000 and 100,000 threads: p50/p99, queries per page, plans (bench/ops_pages.py).
- replicas: the list API's throughput with the primary alone and with the primary and one streaming
          replica (its own pair of PostgreSQL servers on this machine), in alternating rounds, with
          where the reads ran (bench/replicas.py).

Everything listens on and talks to 127.0.0.1 only; every loop is bounded in count and time; every
server started here is stopped here. Results: ``bench/RESULTS.md`` and ``bench/out/results.json``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
BIN = Path(sys.executable).parent
BENCH_BIN = ROOT / ".venv-bench" / "bin"  # the [bench] extra's own venv (bench/run.sh): the peer
sys.path.insert(0, str(HERE))

import seed  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def _int(name: str, default: int, quick: int) -> int:
    return int(os.environ.get(name) or (quick if QUICK else default))


THREADS = _int("BENCH_THREADS", 1_000_000, 20_000)
OTHER_THREADS = _int("BENCH_OTHER_THREADS", 100_000, 2_000)
SQLITE_THREADS = _int("BENCH_SQLITE_THREADS", 100_000, 10_000)
DURATION = _int("BENCH_DURATION", 15, 5)
ROUNDS = _int("BENCH_ROUNDS", 3, 1)
CONNECTIONS = _int("BENCH_CONNECTIONS", 16, 16)
MEM_REQUESTS = _int("BENCH_MEM_REQUESTS", 100_000, 10_000)
LIST_REPEAT = _int("BENCH_LIST_REPEAT", 100, 20)
SPREAD = 1000  # threads in the "1,000 different threads" load
SECTIONS = set((os.environ.get("BENCH_SECTIONS") or "plain,parity,patch,list,memory,webhooks,ops,replicas").split(","))
OPS_REPEAT = _int("BENCH_OPS_REPEAT", 15, 5)
PARITY_THREADS = _int("BENCH_PARITY_THREADS", 5_000, 5_000)
PARITY_DB = os.environ.get("BENCH_PARITY_DB") or "hbench_parity"
# `manage.py serve --workers`: one a core (the command's own default suits the machine too; the
# bench names it so that RESULTS.md says what ran).
# `manage.py serve --workers`: unset, serve's own default (two a core), as a deployment runs it.
SERVE_WORKERS = 2 * len(os.sched_getaffinity(0))
WORKERS = int(os.environ["BENCH_WORKERS"]) if os.environ.get("BENCH_WORKERS") else None
# gunicorn's best configuration for the PATCH load measured here (4 sync workers, as issue 12's
# figures): the variant's rounds compare `serve` with it.
GUNICORN_ARGS = (os.environ.get("BENCH_GUNICORN_ARGS") or "--workers 4 --worker-class sync --log-level warning").split()
PEER = os.environ.get("BENCH_PEER", "1") not in ("0", "")
HEALTH_CHECK_VARIANT = os.environ.get("BENCH_HEALTH_CHECK_VARIANT", "1") not in ("0", "")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
PG_DB = os.environ.get("BENCH_PG_DB") or ("hbench_quick" if QUICK else "hbench_big")
SQLITE_PATH = OUT / ("bench-quick.sqlite3" if QUICK else "bench.sqlite3")

SERVER_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "bench-" + "x" * 60,
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DATABASE_CONN_MAX_AGE": "600",
    # The default budget (6000/min per key) would answer most of the load with 429: the throttle
    # still runs on every request, with a budget the load cannot reach.
    "THROTTLE_API_KEY": "100000000/min",
    "LOG_LEVEL": "WARNING",
    "REDIS_URL": "",
}


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def run(cmd: list[str], timeout: float, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, timeout=timeout, env=env, capture_output=True, text=True, check=False, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, seconds: float, headers: dict | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2).read()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f}s")


def stop(proc: subprocess.Popen, name: str) -> None:
    """Stop a process group that this script started (by its own id), politely then firmly."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass
    log(f"stopped {name}")


# --- databases --------------------------------------------------------------------------------


def django_env(database_url: str) -> dict:
    return {**os.environ, **SERVER_ENV, "DATABASE_URL": database_url, "PYTHONPATH": str(ROOT)}


def prepare(database_url: str, main: int, other: int) -> dict:
    proc = run(
        [sys.executable, str(HERE / "tasks.py"), "prepare", str(main), str(other)],
        timeout=3600,
        env=django_env(database_url),
    )
    sys.stderr.write(proc.stderr[-3000:])
    if proc.returncode:
        raise RuntimeError("prepare failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_pg_database(name: str) -> None:
    exists = run(["psql", f"{PG}/postgres", "-Atc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"], 30)
    if exists.stdout.strip() != "1":
        run(["psql", f"{PG}/postgres", "-c", f'CREATE DATABASE "{name}"'], 60)


# --- servers ----------------------------------------------------------------------------------


@contextmanager
def server(name: str, args: list[str], env: dict, ready_path: str, headers: dict | None = None):
    """An HTTP server of ours on a free port (``{port}`` in ``args`` is replaced by it), started in
    its own process group; yields its base URL and process once ``ready_path`` answers, and stops it."""
    port = free_port()
    proc = subprocess.Popen(
        [arg.format(port=port) for arg in args],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=open(OUT / f"{name}.log", "a"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}{ready_path}", 60, headers)
        yield base, proc
    finally:
        stop(proc, name)


def serve(database_url: str, key: str, extra_env: dict | None = None):
    """``manage.py serve``, the production entry point, with its default workers (or ``WORKERS``)."""
    workers = ["--workers", str(WORKERS)] if WORKERS else []
    return server(
        "serve",
        [str(BIN / "python"), "manage.py", "serve", "--host", "127.0.0.1", "--port", "{port}", *workers],
        {**django_env(database_url), **(extra_env or {})},
        "/api/v1/threads?limit=1",
        {"Authorization": f"Bearer {key}"},
    )


def gunicorn(database_url: str, key: str):
    """gunicorn from the [bench] extra (.venv-bench), the server ``serve`` is compared with, in its
    best configuration measured here: ``GUNICORN_ARGS``."""
    return server(
        "gunicorn",
        [str(BENCH_BIN / "gunicorn"), "threads_project.wsgi", "-b", "127.0.0.1:{port}", *GUNICORN_ARGS],
        django_env(database_url),
        "/api/v1/threads?limit=1",
        {"Authorization": f"Bearer {key}"},
    )


@contextmanager
def peer_server():
    """``langgraph dev`` with a one-node graph; yields its base URL (or None if it cannot run)."""
    exe = BENCH_BIN / "langgraph"
    if not PEER:
        log("peer: skipped (BENCH_PEER=0)")
        yield None, []
        return
    if not exe.exists():
        log("peer: langgraph-cli is not installed in .venv-bench (bench/run.sh installs it); skipped")
        yield None, []
        return
    port = free_port()
    logfile = OUT / "peer.log"
    shutil.rmtree(HERE / "peer" / ".langgraph_api", ignore_errors=True)  # start empty, like ours
    env = {
        **os.environ,
        "LANGSMITH_TRACING": "false",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [str(exe), "dev", "--no-reload", "--no-browser", "--host", "127.0.0.1", "--port", str(port)],
        cwd=HERE / "peer",
        env=env,
        start_new_session=True,
        stdout=open(logfile, "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and base is None:
            time.sleep(0.5)
            # It may move to another port when the one asked for is taken: believe its banner.
            found = re.search(r"API: \S*?(http://127\.0\.0\.1:\d+)", logfile.read_text(errors="replace"))
            if found:
                base = found.group(1)
        if base is None:
            log("peer: langgraph dev did not start; see bench/out/peer.log")
            yield None, []
            return
        wait_http(f"{base}/ok", 60)
        yield base, [proc.pid]
    finally:
        stop(proc, "peer")


def peer_threads(base: str, count: int) -> list[str]:
    """``count`` threads on the peer, each with the metadata of our seed's thread of the same number
    (its ``bucket`` included); their ids in that order."""

    def create(n: int) -> str:
        metadata = json.loads(seed.row("bench-main", "", n)[3])
        body = json.dumps({"metadata": metadata}).encode()
        request = urllib.request.Request(
            f"{base}/threads", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        return json.loads(urllib.request.urlopen(request, timeout=10).read())["thread_id"]

    with ThreadPoolExecutor(8) as pool:  # bounded: `count` requests, 8 at a time
        return list(pool.map(create, range(count)))


# --- load -------------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (and their finished children) so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url_base: str, prefix: str, ids_file: Path, key: str, duration: int, pids: list[int] = ()) -> dict:
    data = wrk_run(
        url_base, "patch.lua", [str(ids_file), prefix, key], duration, {"server": lambda: list(pids)} if pids else {}
    )
    # The server's own CPU per request: a figure that the machine's other load moves less.
    data["server_cpu_ms"] = data["cpu_ms"].get("server")
    return data


def wrk_run(
    url_base: str,
    script: str,
    args: list[str],
    duration: int,
    cpu_of: dict[str, Callable[[], list[int]]],
    probe: bool = False,
) -> dict:
    """One wrk load with ``bench/wrk/<script>``; ``cpu_ms``: the CPU time (ms per request) that
    each group of processes spent meanwhile (each group's pids are listed before and after);
    ``probe``: the machine's speed meanwhile (bench/probe.py), as ``probe``."""
    cmd = [
        "wrk",
        "-t2",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(HERE / "wrk" / script),
        url_base,
        "--",
        *args,
    ]
    before = {name: {pid: cpu_seconds([pid]) for pid in pids()} for name, pids in cpu_of.items()}
    prober = start_probe(duration) if probe else None
    proc = run(cmd, timeout=duration + 60)
    spent = {}
    for name, pids in cpu_of.items():
        # A process that ended meanwhile is lost to the count; one that started counts in full.
        after = {pid: cpu_seconds([pid]) for pid in set(pids()) | set(before[name])}
        spent[name] = sum(after[pid] - before[name].get(pid, 0) for pid in after if Path(f"/proc/{pid}").exists())
    found = re.search(r"BENCH_JSON (\{.*\})", proc.stdout)
    if not found:
        raise RuntimeError(f"wrk failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    data = json.loads(found.group(1))
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = data["non2xx"] + data["socket_errors"]
    data["cpu_ms"] = {name: cpu * 1000 / data["requests"] if data["requests"] else None for name, cpu in spent.items()}
    if prober:
        data["probe"] = probe_reading(prober)
    return data


def start_probe(seconds: float) -> subprocess.Popen:
    """bench/probe.py for ``seconds``: the machine's speed meanwhile; read with ``probe_reading``."""
    return subprocess.Popen([sys.executable, str(HERE / "probe.py"), str(seconds)], stdout=subprocess.PIPE, text=True)


def probe_reading(prober: subprocess.Popen) -> dict:
    return json.loads(prober.communicate(timeout=60)[0])


def pgbench(org: str, base: int, stride: int, spread: int, duration: int, database: str = PG_DB) -> dict:
    return pgbench_run(
        HERE / "pgbench" / "patch.sql",
        {"org": org, "base": base, "stride": stride, "spread": spread},
        duration,
        database,
    )


def pgbench_run(script: Path, defines: dict, duration: int, database: str, mode: str = "prepared") -> dict:
    cmd = [
        "pgbench",
        "-n",
        "-M",
        mode,
        "-c",
        str(CONNECTIONS),
        "-j",
        "2",
        "-T",
        str(duration),
        "-f",
        str(script),
        *[arg for name, value in defines.items() for arg in ("-D", f"{name}={value}")],
        f"{PG}/{database}",
    ]
    proc = run(cmd, timeout=duration + 60)
    tps = re.search(r"tps = ([\d.]+)", proc.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", proc.stdout)
    if not tps:
        raise RuntimeError(f"pgbench failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return {"tps": float(tps.group(1)), "latency_avg_ms": float(latency.group(1)) if latency else None}


def patch_section(info: dict) -> dict:
    database_url = f"{PG}/{PG_DB}"
    single = [seed.thread_id("bench-main", THREADS - 1)]  # the newest thread
    stride = max(1, THREADS // SPREAD)
    many = [seed.thread_id("bench-main", stride * i) for i in range(SPREAD)]
    files = {}
    for name, ids in (("ours-1", single), ("ours-1000", many)):
        files[name] = OUT / f"{name}.ids"
        files[name].write_text("\n".join(ids) + "\n")
    results: dict = {"modes": {}}
    pg_args = {"1": (THREADS - 1, 1, 1), "1000": (0, stride, SPREAD)}

    def ab_rounds(mode: str, label: str, base: str, server: subprocess.Popen, peer: str | None, peer_pids) -> None:
        log(f"patch, {label}: warm-up")
        wrk(base, "/api/v1/threads/", files[f"ours-{mode}"], info["key"], 3)
        if peer:
            wrk(peer, "/threads/", files[f"peer-{mode}"], "", 3)
        ours_pids = children(server.pid)
        rounds = []
        for r in range(ROUNDS):
            row = {}
            for who in ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]:  # A/B, then B/A
                if who == "ours":
                    row["ours"] = wrk(base, "/api/v1/threads/", files[f"ours-{mode}"], info["key"], DURATION, ours_pids)
                elif peer:
                    row["peer"] = wrk(peer, "/threads/", files[f"peer-{mode}"], "", DURATION, peer_pids)
                else:
                    continue
                log(
                    f"  round {r + 1} {who}: {row[who]['rps']:.0f} req/s, p50 {row[who]['p50_us'] / 1000:.1f} ms,"
                    f" p99 {row[who]['p99_us'] / 1000:.1f} ms, errors {row[who]['errors']},"
                    f" server CPU {row[who]['server_cpu_ms'] or 0:.2f} ms/request"
                )
            if "peer" in row:
                row["ratio"] = row["ours"]["rps"] / row["peer"]["rps"]
            rounds.append(row)
        db = pgbench(info["org"], *pg_args[mode], DURATION)
        log(f"  pgbench: {db['tps']:.0f} tps")
        results["modes"][label] = {"rounds": rounds, "pgbench": db}

    with peer_server() as (peer, peer_pids):
        results["peer_available"] = peer is not None
        if peer:
            peer_ids = peer_threads(peer, SPREAD)
            files["peer-1"] = OUT / "peer-1.ids"
            files["peer-1"].write_text(peer_ids[0] + "\n")
            files["peer-1000"] = OUT / "peer-1000.ids"
            files["peer-1000"].write_text("\n".join(peer_ids) + "\n")
        with serve(database_url, info["key"]) as (base, server):
            for mode in ("1", "1000"):
                ab_rounds(mode, mode, base, server, peer, peer_pids)
        if HEALTH_CHECK_VARIANT:
            # The same 1,000-thread load with the per-request connection health check switched off.
            with serve(database_url, info["key"], {"DATABASE_CONN_HEALTH_CHECKS": "0"}) as (base, server):
                ab_rounds("1000", "1000-nohc", base, server, peer, peer_pids)
    return results


# --- parity (issue 12) ---------------------------------------------------------------------------

HOT, SPREAD_200, LIST = "hot", "200", "list"


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    return [pid, *[p for child in children(pid) for p in tree(child)]]


def pg_backends(database: str) -> list[int]:
    """The PostgreSQL server processes of the connections to ``database``."""
    out = run(
        ["psql", f"{PG}/postgres", "-Atc", f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'"], 30
    ).stdout
    return [int(pid) for pid in out.split()]


def vacuum(database: str) -> None:
    run(["psql", f"{PG}/{database}", "-qc", "VACUUM ANALYZE"], 600)


def alternate(label: str, loads: dict[str, Callable[[int], dict]]) -> list[dict]:
    """``ROUNDS`` rounds of each load, in turn (A/B, then B/A), after a short warm-up of each;
    ``ratio`` is the first load's throughput over the second's."""
    names = list(loads)
    for name in names:
        loads[name](3)
    rounds = []
    for r in range(ROUNDS):
        row = {}
        for name in names if r % 2 == 0 else names[::-1]:
            row[name] = result = loads[name](DURATION)
            cpu = ", ".join(f"{group} {ms:.2f}" for group, ms in result["cpu_ms"].items() if ms is not None)
            log(
                f"  {label}, round {r + 1} {name}: {result['rps']:.0f} req/s, p50 {result['p50_us'] / 1000:.1f} ms,"
                f" p99 {result['p99_us'] / 1000:.1f} ms, errors {result['errors']}, CPU ms/request: {cpu}"
            )
        if len(row) == 2:
            row["ratio"] = row[names[0]]["rps"] / row[names[1]]["rps"]
        rounds.append(row)
    return rounds


def parity_section() -> dict:
    database = PARITY_DB
    database_url = f"{PG}/{database}"
    ensure_pg_database(database)
    log(f"preparing PostgreSQL {database}: {PARITY_THREADS:,} threads")
    info = prepare(database_url, PARITY_THREADS, 0)
    stride = PARITY_THREADS // 200
    numbers = {SPREAD_200: [stride * i for i in range(200)], HOT: [PARITY_THREADS - 1]}
    pg_rows = {SPREAD_200: (0, stride, 200), HOT: (PARITY_THREADS - 1, 1, 1)}
    files = {}
    for case, ns in numbers.items():
        files[case] = OUT / f"parity-ours-{case}.ids"
        files[case].write_text("\n".join(seed.thread_id("bench-main", n) for n in ns) + "\n")
    # pgbench's list: the very SQL the list view runs, its bucket drawn at random.
    captured = json.loads(
        run([sys.executable, str(HERE / "tasks.py"), "list_sql", info["key"]], 300, env=django_env(database_url))
        .stdout.strip()
        .splitlines()[-1]
    )
    literal = json.dumps({"bucket": captured["placeholder"]})
    assert captured["sql"].count(f"'{literal}'::jsonb") == 1, captured["sql"]
    list_sql = OUT / "parity-list.sql"
    list_sql.write_text(
        f"\\set b random(0, {seed.BUCKETS - 1})\n"
        + captured["sql"].replace(f"'{literal}'::jsonb", "jsonb_build_object('bucket', (:b)::text)")
        + ";\n"
    )

    def ours(base: str, proc: subprocess.Popen, case: str) -> Callable[[int], dict]:
        cpu_of = {"server": lambda: tree(proc.pid), "postgres": lambda: pg_backends(database)}
        if case == LIST:
            return lambda d: wrk_run(base, "list.lua", ["ours", str(seed.BUCKETS), info["key"]], d, cpu_of)
        return lambda d: wrk_run(base, "patch.lua", [str(files[case]), "/api/v1/threads/", info["key"]], d, cpu_of)

    results: dict = {
        "threads": PARITY_THREADS,
        "workers": WORKERS or SERVE_WORKERS,
        "buckets": seed.BUCKETS,
        "cases": {},
    }
    with peer_server() as (peer, peer_pids):
        results["peer_available"] = peer is not None
        if peer:
            log(f"peer: creating {PARITY_THREADS:,} threads")
            peer_ids = peer_threads(peer, PARITY_THREADS)
            for case, ns in numbers.items():
                files[f"peer-{case}"] = OUT / f"parity-peer-{case}.ids"
                files[f"peer-{case}"].write_text("\n".join(peer_ids[n] for n in ns) + "\n")

        def peer_load(case: str) -> Callable[[int], dict]:
            cpu_of = {"peer": lambda: [p for pid in peer_pids for p in tree(pid)]}
            if case == LIST:
                return lambda d: wrk_run(peer, "list.lua", ["peer", str(seed.BUCKETS)], d, cpu_of)
            return lambda d: wrk_run(peer, "patch.lua", [str(files[f"peer-{case}"]), "/threads/", ""], d, cpu_of)

        with serve(database_url, info["key"]) as (base, proc):
            results["server"] = f"manage.py serve --workers {WORKERS or SERVE_WORKERS}"
            for case in (SPREAD_200, HOT, LIST):
                vacuum(database)
                loads = {"ours": ours(base, proc, case)}
                if peer:
                    loads["peer"] = peer_load(case)
                rounds = alternate(f"parity {case}", loads)
                vacuum(database)
                if case == LIST:
                    db = pgbench_run(list_sql, {}, DURATION, database, mode="simple")
                else:
                    org_rows = dict(zip(("base", "stride", "spread"), pg_rows[case], strict=True))
                    db = pgbench_run(
                        HERE / "pgbench" / "patch.sql", {"org": info["org"], **org_rows}, DURATION, database
                    )
                log(f"  parity {case}, pgbench: {db['tps']:.0f} tps")
                results["cases"][case] = {"rounds": rounds, "pgbench": db}
    if (BENCH_BIN / "gunicorn").exists():
        # The same 200-thread load under both servers, in alternating rounds.
        vacuum(database)
        with serve(database_url, info["key"]) as (base, proc), gunicorn(database_url, info["key"]) as (gbase, gproc):
            results["gunicorn"] = " ".join(GUNICORN_ARGS)
            results["variant"] = alternate(
                "serve vs gunicorn",
                {
                    "serve": ours(base, proc, SPREAD_200),
                    "gunicorn": ours(gbase, gproc, SPREAD_200),
                },
            )
    return results


# --- memory -----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_section(info: dict) -> dict:
    database_url = f"{PG}/{PG_DB}"
    ids_file = OUT / "ours-1000.ids"
    stride = max(1, THREADS // SPREAD)
    ids_file.write_text("\n".join(seed.thread_id("bench-main", stride * i) for i in range(SPREAD)) + "\n")
    samples: list[dict] = []
    with serve(database_url, info["key"]) as (base, proc):
        workers = children(proc.pid)
        done = threading.Event()
        total = {"requests": 0, "errors": 0}
        started = time.monotonic()

        def sample() -> None:
            while not done.is_set():
                samples.append(
                    {
                        "t": round(time.monotonic() - started, 1),
                        "requests": total["requests"],
                        "rss_kib": {str(w): rss_kib(w) for w in workers},
                    }
                )
                done.wait(2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        slices = 0
        # Bounded: 10-second slices until the count is reached, for at most 15 minutes.
        while total["requests"] < MEM_REQUESTS and time.monotonic() - started < 900:
            result = wrk(base, "/api/v1/threads/", ids_file, info["key"], 10)
            total["requests"] += result["requests"]
            total["errors"] += result["errors"]
            slices += 1
            log(
                f"  memory: {total['requests']:,} requests, RSS "
                + ", ".join(f"{rss_kib(w) / 1024:.1f} MiB" for w in workers if rss_kib(w))
            )
        done.set()
        sampler.join(5)
        samples.append(
            {
                "t": round(time.monotonic() - started, 1),
                "requests": total["requests"],
                "rss_kib": {str(w): rss_kib(w) for w in workers},
            }
        )
        alive = [w for w in workers if rss_kib(w)]
    # Warm: the first sample after 10% of the requests (imports, caches and pools are filled).
    warm = next((s for s in samples if s["requests"] >= MEM_REQUESTS // 10), samples[0])
    final = samples[-1]
    per_worker = []
    for w in workers:
        a, b = warm["rss_kib"].get(str(w)), final["rss_kib"].get(str(w))
        if a and b:
            per_worker.append(
                {
                    "pid": w,
                    "start_mib": (samples[0]["rss_kib"].get(str(w)) or 0) / 1024,
                    "warm_mib": a / 1024,
                    "final_mib": b / 1024,
                    "max_mib": max(s["rss_kib"].get(str(w)) or 0 for s in samples) / 1024,
                    "growth": (b - a) / a,
                }
            )
    return {
        "requests": total["requests"],
        "errors": total["errors"],
        "workers": per_worker,
        "restarted": sorted(set(workers) - set(alive)),
        "samples": samples,
    }


# --- list -------------------------------------------------------------------------------------


def list_section(database_url: str, main: int, key: str) -> list[dict]:
    proc = run(
        [sys.executable, str(HERE / "tasks.py"), "list", str(main), str(LIST_REPEAT), key],
        timeout=1800,
        env=django_env(database_url),
    )
    sys.stderr.write(proc.stderr[-6000:])
    if proc.returncode:
        raise RuntimeError("list timing failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ops_section(database_url: str) -> list[dict]:
    proc = run(
        [sys.executable, str(HERE / "ops_pages.py"), str(OPS_REPEAT)], timeout=3600, env=django_env(database_url)
    )
    sys.stderr.write(proc.stderr[-8000:])
    if proc.returncode:
        raise RuntimeError("operator pages timing failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------------

SERVER_VERSION = """
import importlib.metadata as m
print(f"granian {m.version('granian')} (WSGI)")
"""


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )

    def version(cmd: list[str]) -> str:
        try:
            out = run(cmd, 30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return "?"

    pg = run(["psql", f"{PG}/postgres", "-Atc", "SHOW server_version"], 30).stdout.strip()
    sync = run(["psql", f"{PG}/postgres", "-Atc", "SHOW synchronous_commit"], 30).stdout.strip()
    commit = run(["git", "rev-parse", "--short", "HEAD"], 30, cwd=ROOT).stdout.strip()
    peer_python = BENCH_BIN / "python"
    peer = run([str(peer_python), "-m", "pip", "show", "langgraph-api"], 60).stdout if peer_python.exists() else ""
    peer_version = re.search(r"Version: (\S+)", peer)
    server = run([str(BIN / "python"), "-c", SERVER_VERSION], 60).stdout.strip() or "granian"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": f"{pg} (synchronous_commit={sync})",
        "sqlite": sqlite3.sqlite_version,
        "wrk": version(["wrk", "-v"]),
        "peer": f"langgraph-api {peer_version.group(1)}" if peer_version else "not installed",
        "server": server,
        "commit": commit,
        "load_before": os.getloadavg(),
    }


def main() -> None:
    # On SIGTERM (e.g. run.sh's time limit) unwind normally, so that every server started here stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    OUT.mkdir(exist_ok=True)
    if not shutil.which("wrk") or not shutil.which("pgbench"):
        raise SystemExit("wrk and pgbench are needed: bench/run.sh installs them")
    started = time.monotonic()
    results: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": QUICK,
        "config": {
            "threads": THREADS,
            "other_threads": OTHER_THREADS,
            "sqlite_threads": SQLITE_THREADS,
            "duration_s": DURATION,
            "rounds": ROUNDS,
            "connections": CONNECTIONS,
            "memory_requests": MEM_REQUESTS,
            "list_repeat": LIST_REPEAT,
            "parity_threads": PARITY_THREADS,
            "workers": WORKERS or SERVE_WORKERS,
        },
        "machine": machine(),
    }
    if "plain" in SECTIONS:
        log("PATCH, the plain comparison: both sides started empty (issue 18)")
        import plain

        results["plain"] = plain.section(sys.modules[__name__])
    if "parity" in SECTIONS:
        log("parity with the peer (issue 12)")
        results["parity"] = parity_section()
    if SECTIONS & {"patch", "memory", "list", "webhooks", "ops"}:
        ensure_pg_database(PG_DB)
        log(f"preparing PostgreSQL {PG_DB}: {THREADS:,} + {OTHER_THREADS:,} threads")
        info = prepare(f"{PG}/{PG_DB}", THREADS, OTHER_THREADS)
        results["pg_seed_seconds"] = info["seed_seconds"]
    if "patch" in SECTIONS:
        log("PATCH throughput")
        results["patch"] = patch_section(info)
    if "memory" in SECTIONS:
        log(f"worker memory over {MEM_REQUESTS:,} PATCH requests")
        results["memory"] = memory_section(info)
    if "webhooks" in SECTIONS:
        log("webhooks")
        import webhooks

        results["webhooks"] = webhooks.section(sys.modules[__name__], info)
    if "list" in SECTIONS:
        log("list over PostgreSQL")
        results["list_pg"] = list_section(f"{PG}/{PG_DB}", THREADS, info["key"])
        sqlite_url = f"sqlite:///{SQLITE_PATH}"
        log(f"preparing SQLite: {SQLITE_THREADS:,} threads")
        sqlite_info = prepare(sqlite_url, SQLITE_THREADS, SQLITE_THREADS // 10)
        results["sqlite_seed_seconds"] = sqlite_info["seed_seconds"]
        log("list over SQLite")
        results["list_sqlite"] = list_section(sqlite_url, SQLITE_THREADS, sqlite_info["key"])
    if "ops" in SECTIONS:
        log("operator pages and admin over PostgreSQL")
        results["ops"] = ops_section(f"{PG}/{PG_DB}")
    if "replicas" in SECTIONS:
        log("read replicas: the list with the primary alone and with a streaming replica")
        import replicas

        results["replicas"] = replicas.section(sys.modules[__name__])
    results["machine"]["load_after"] = os.getloadavg()
    results["elapsed_s"] = round(time.monotonic() - started)
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=str))
    import report

    target = OUT / "RESULTS-quick.md" if QUICK else HERE / "RESULTS.md"
    target.write_text(report.render(results))
    log(f"done in {results['elapsed_s']} s: {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
