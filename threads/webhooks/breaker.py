"""An endpoint's circuit breaker, as pure rules: from its state and its latest outcomes to its
next state. No ORM: the worker reads and writes the state (``threads.webhooks.worker.record``).

- Closed: up to ``WEBHOOK_ENDPOINT_CONCURRENCY`` attempts in flight.
- After ``WEBHOOK_BREAKER_FAILURES`` failed attempts in a row the circuit opens: no attempt until
  ``next_probe_at``, then one delivery at a time (the probe). A failed probe moves the next one
  along ``WEBHOOK_RETRY_SCHEDULE`` (5 s, 5 min, 30 min, … and then every last interval); a probe
  that succeeds closes the circuit and the endpoint's backlog flows again.
- Failing without a success for longer than ``WEBHOOK_DISABLE_AFTER_DAYS``: the endpoint is
  disabled, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from threads.merge import format_datetime


@dataclass(frozen=True)
class State:
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    next_probe_at: datetime | None = None
    disabled_reason: str = ""


@dataclass(frozen=True)
class Rules:
    failures: int  # in a row, to open the circuit
    schedule: list[float]  # seconds between probes
    disable_after: timedelta

    def probe_delay(self, consecutive_failures: int) -> timedelta:
        n = consecutive_failures - self.failures  # failed probes so far
        seconds = self.schedule[min(n, len(self.schedule) - 1)] if self.schedule else 0
        return timedelta(seconds=seconds)


def after(state: State, outcomes: list[tuple[datetime, bool, str]], now: datetime, rules: Rules) -> State:
    """The state once ``outcomes`` — ``(when, ok, error)`` in the order they ended — are counted."""
    failures, since = state.consecutive_failures, state.failing_since
    last_error = ""
    for at, ok, error in outcomes:
        if ok:
            failures, since = 0, None
        else:
            failures, since, last_error = failures + 1, since or at, error
    if failures == 0:
        return State()
    probe = now + rules.probe_delay(failures) if failures >= rules.failures else None
    new = replace(state, consecutive_failures=failures, failing_since=since, next_probe_at=probe)
    if since is not None and now - since >= rules.disable_after:
        reason = (
            f"Disabled after failing since {format_datetime(since)} ({failures} failed attempts in a row,"
            f" the last: {last_error or 'no answer'}). Re-enable it with isActive: true."
        )
        new = replace(new, disabled_reason=reason[:500])
    return new


def in_flight_cap(next_probe_at: datetime | None, per_endpoint: int) -> int:
    """Attempts an endpoint may have in flight: one (the probe) while its circuit is open."""
    return 1 if next_probe_at is not None else per_endpoint
