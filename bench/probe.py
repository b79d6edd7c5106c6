"""How fast a core is for one of our processes at this moment, sampled while a load runs: the
benchmarks' control for a shared machine. Every ``PERIOD`` seconds, for ``SECONDS`` in all, one fixed
unit of pure-Python work (dicts, JSON, a sort: what a request handler does) is timed in this
thread's CPU time, which neither waiting for a core nor time stolen by the hypervisor counts; what
does count is the core itself (clock, a busy sibling thread, caches shared with the load). Prints
one JSON line: the median CPU µs per unit, and the share of the machine's time stolen meanwhile
(/proc/stat). A server's CPU per request over the probe's µs per unit is its cost with the
machine's speed taken out.

    python bench/probe.py SECONDS
"""

from __future__ import annotations

import json
import statistics
import sys
import time

PERIOD = 0.5


def unit() -> None:
    data = {f"key-{i}": {"n": i, "s": str(i) * 3, "tags": ["a", "b", str(i % 7)]} for i in range(400)}
    text = json.dumps(data, sort_keys=True)
    back = json.loads(text)
    sorted(back, key=lambda k: back[k]["n"] * 7 % 401)


def cpu_ticks() -> tuple[int, int]:
    """(all, stolen) clock ticks of every CPU since boot."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def main() -> None:
    seconds = float(sys.argv[1])
    for _ in range(20):  # warm: the allocator, the interpreter's caches
        unit()
    ticks_before = cpu_ticks()
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.thread_time_ns()
        for _ in range(5):
            unit()
        samples.append((time.thread_time_ns() - started) / 5000)
        time.sleep(PERIOD)
    ticks_after = cpu_ticks()
    total = ticks_after[0] - ticks_before[0]
    print(
        json.dumps(
            {
                "unit_us": statistics.median(samples) if samples else None,
                "samples": len(samples),
                "steal_pct": 100 * (ticks_after[1] - ticks_before[1]) / total if total else None,
            }
        )
    )


if __name__ == "__main__":
    main()
