"""The delivery worker's threads: one does every database step (``threads.webhooks.worker``), and
``concurrency`` sender threads make the HTTP requests.

Claimed deliveries wait in a lane per endpoint; a lane sends at most ``WEBHOOK_ENDPOINT_CONCURRENCY``
at once, and a sender that finishes one takes the next of the same lane at once, on the same
kept-alive connection, without waiting for the database thread. A failed attempt gives the rest
of its lane back (``worker.release``): the breaker decides what that endpoint gets next. A hung
endpoint holds at most its own in-flight slots; every other lane keeps moving.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict, deque

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import sender, wake, worker
from .models import Delivery

DEFAULT_CONCURRENCY = 32  # sender threads: requests in flight at once, over all endpoints
MAX_CONCURRENCY = 1000
BUDGET_PER_SENDER = 4  # deliveries a worker holds at most (leased, queued or sending), per sender
CLAIM_SECONDS = 0.25  # with nothing new, due retries and test events are looked for this often
ONCE_GRACE_SECONDS = 2.0  # --once ends within the HTTP timeout and this
ERROR_PAUSE_SECONDS = 1.0


def run(stop: threading.Event, *, once: bool = False, concurrency: int = DEFAULT_CONCURRENCY) -> None:
    """Deliver until ``stop`` is set (the attempts in flight finish); with ``once``, attempt each
    delivery due now at most once and return within ``WEBHOOK_TIMEOUT_SECONDS`` plus
    ``ONCE_GRACE_SECONDS``, whatever the receivers do."""
    Loop(stop, once=once, concurrency=concurrency).run()


class Lanes:
    """The deliveries this worker holds, per endpoint; shared by the database thread and the senders."""

    def __init__(self, per_endpoint: int) -> None:
        self.per_endpoint = per_endpoint
        self.lock = threading.Lock()
        self.queued: dict = defaultdict(deque)
        self.sending: dict = defaultdict(int)
        self.send_until = float("inf")  # time.monotonic(): no request starts later (--once, stopping)

    def add(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Queue claimed deliveries; the ones to start now."""
        with self.lock:
            for delivery in deliveries:
                self.queued[delivery.endpoint_id].append(delivery)
            return [job for pk in {d.endpoint_id for d in deliveries} for job in self._start(pk)]

    def finished(self, delivery: Delivery, ok: bool) -> tuple[Delivery | None, list[Delivery]]:
        """After an attempt: the same lane's next delivery to send, and those to give back."""
        pk = delivery.endpoint_id
        with self.lock:
            self.sending[pk] -= 1
            if not ok or time.monotonic() >= self.send_until:
                back = list(self.queued.pop(pk, ()))
                return None, back
            started = self._start(pk, 1)
            return (started[0] if started else None), []

    def _start(self, pk, most: int | None = None) -> list[Delivery]:
        jobs = []
        lane = self.queued[pk]
        while lane and self.sending[pk] < self.per_endpoint and (most is None or len(jobs) < most):
            jobs.append(lane.popleft())
            self.sending[pk] += 1
        if not lane:
            self.queued.pop(pk, None)
        return jobs

    def drain(self) -> list[Delivery]:
        """Everything queued and not started (to give back)."""
        with self.lock:
            back = [d for lane in self.queued.values() for d in lane]
            self.queued.clear()
            return back

    def low(self, pk) -> bool:
        with self.lock:
            return len(self.queued.get(pk, ())) < self.per_endpoint


class Loop:
    def __init__(self, stop: threading.Event, *, once: bool, concurrency: int) -> None:
        self.stop, self.once, self.concurrency = stop, once, concurrency
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        # (delivery, outcome or None, ended). A Queue, not a SimpleQueue: SimpleQueue.get(timeout=…)
        # interrupted by a signal after its deadline blocked for good (seen: SIGTERM in that wait
        # hung the worker's stop, the stacks showed it there), while Queue.get recomputes its wait.
        self.results: queue.Queue = queue.Queue()
        self.connections = sender.Connections(settings.WEBHOOK_ENDPOINT_CONCURRENCY)
        self.lanes = Lanes(settings.WEBHOOK_ENDPOINT_CONCURRENCY)
        self.watch = wake.Watch()
        self.timeout = settings.WEBHOOK_TIMEOUT_SECONDS
        self.held: dict = defaultdict(int)  # endpoint id -> deliveries leased here, not recorded or given back
        self.served: dict = {}  # endpoint id -> the claim that last gave it deliveries (the rotation)
        self.claims = 0
        self.refill: set = set()  # endpoints whose last claim was full: probably more waiting
        self.failed_here: set = set()  # --once: endpoints not tried again in this run
        self.proven: set = set()  # endpoints whose last attempt from here succeeded: leased a batch

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout + ONCE_GRACE_SECONDS
        due_by = None
        if self.once:
            while (worker.guarded(worker.enqueue) or (0, False))[1]:
                pass
            due_by = timezone.now()
            self.lanes.send_until = deadline - ONCE_GRACE_SECONDS / 2
        senders = [
            threading.Thread(target=self._send_loop, name=f"webhook-sender-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in senders:
            thread.start()
        next_poll = next_claim = 0.0
        stop_by = float("inf")
        try:
            while True:
                stopping = self.stop.is_set() or (self.once and time.monotonic() >= self.lanes.send_until)
                if stopping:
                    if self.lanes.send_until:
                        self.lanes.send_until = 0  # nothing new starts; the attempts in flight finish
                        stop_by = time.monotonic() + self.timeout + worker.LEASE_MARGIN_SECONDS
                    self._give_back(self.lanes.drain())
                results = self._results(0.05 if stopping or self.once else self._wait(next_poll, next_claim))
                if results:
                    self._record(results)
                if stopping:
                    if not any(self.held.values()):
                        break
                    if time.monotonic() > stop_by:  # cannot happen; if it does, the leases run out
                        worker.logger.error("webhook worker: stopping with %s unaccounted", dict(self.held))
                        break
                    continue
                now = time.monotonic()
                budget = self.concurrency * BUDGET_PER_SENDER - sum(self.held.values())
                if not self.once and now >= next_poll:
                    self._poll(budget)
                    next_poll = now + self.watch.interval()
                    budget = self.concurrency * BUDGET_PER_SENDER - sum(self.held.values())
                hungry = any(self.lanes.low(pk) for pk in self.refill)
                if budget > 0 and (hungry or now >= next_claim or (self.once and results)):
                    claimed = worker.guarded(self._claim, budget, due_by) or []
                    next_claim = now + CLAIM_SECONDS
                    if self.once and not claimed and not any(self.held.values()):
                        break
        finally:
            for _ in senders:
                self.jobs.put(None)
            for thread in senders:
                thread.join()
            self.connections.close()
            connection.close()

    def _wait(self, next_poll: float, next_claim: float) -> float:
        return max(0.0, min(next_poll, next_claim) - time.monotonic())

    def _results(self, wait: float) -> list:
        """Every outcome waiting, after waiting up to ``wait`` seconds for the first one."""
        out = []
        try:
            out.append(self.results.get(timeout=wait) if wait > 0 else self.results.get_nowait())
            while True:
                out.append(self.results.get_nowait())
        except queue.Empty:
            pass
        return out

    def _record(self, results: list) -> None:
        attempted = [r for r in results if r[1] is not None]
        back = [r[0] for r in results if r[1] is None]
        for delivery, outcome, _ in attempted:
            (self.proven.add if outcome.ok else self.proven.discard)(delivery.endpoint_id)
        if self.once:
            self.failed_here |= {d.endpoint_id for d, outcome, _ in attempted if not outcome.ok}
        if attempted and worker.guarded(worker.record, attempted) is None:
            time.sleep(ERROR_PAUSE_SECONDS)  # the leases run out: attempted again
        self._give_back(back)
        for delivery, _, _ in attempted:
            self.held[delivery.endpoint_id] -= 1

    def _give_back(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            worker.guarded(worker.release, deliveries)  # failing that, the leases run out
        for delivery in deliveries:
            self.held[delivery.endpoint_id] -= 1

    def _poll(self, budget: int) -> int:
        """New events: their deliveries made and, in the same transaction, claimed (one commit
        between an event's commit and its request)."""
        news = worker.guarded(self.watch.endpoints_with_news)
        if news is None:
            time.sleep(ERROR_PAUSE_SECONDS)
            return 0
        created = (worker.guarded(self._enqueue_and_claim, news, budget) or 0) if news else 0
        self.watch.counted(bool(news), created)
        return created

    def _enqueue_and_claim(self, news: list, budget: int) -> int:
        claimed = []
        with transaction.atomic():
            created = worker.enqueue(news)[0]
            if created and budget > 0:
                claimed = self._claim_rows(budget, None)
        if claimed:
            self._take(claimed)  # committed: now they may be sent
        return created

    def _claim(self, budget: int, due_by) -> worker.Claimed:
        claimed = self._claim_rows(budget, due_by)
        self._take(claimed)
        return claimed

    def _claim_rows(self, budget: int, due_by) -> worker.Claimed:
        held = {pk: n for pk, n in self.held.items() if n}
        return worker.claim(
            budget, due_by=due_by, exclude=self.failed_here, served=self.served, held=held, proven=self.proven
        )

    def _take(self, claimed: worker.Claimed) -> None:
        """Claimed (and committed): into their lanes, and the senders start."""
        self.claims += 1
        got: dict = defaultdict(int)
        for delivery in claimed:
            got[delivery.endpoint_id] += 1
            self.served[delivery.endpoint_id] = self.claims
        # Given its whole share (all its limit allowed, or all the budget did): it probably has more
        # due, and is claimed again as soon as its lane runs low, not at the next round of claims.
        if not claimed:
            self.refill = set()
        for pk in got:
            (self.refill.add if pk in claimed.full else self.refill.discard)(pk)
        for pk, n in got.items():
            self.held[pk] += n
        for job in self.lanes.add(claimed):
            self.jobs.put(job)

    def _send_loop(self) -> None:
        while (delivery := self.jobs.get()) is not None:
            while delivery is not None:
                left = self.lanes.send_until - time.monotonic()
                if left <= 0:  # stopping, or --once's end: given back, not attempted
                    self.results.put((delivery, None, timezone.now()))
                    _, back = self.lanes.finished(delivery, False)
                    for other in back:
                        self.results.put((other, None, timezone.now()))
                    break
                try:
                    outcome = worker.send(delivery, self.connections, min(self.timeout, left + ONCE_GRACE_SECONDS / 2))
                except Exception as error:  # a bug must not lose the sender: the attempt counts as failed
                    worker.logger.exception("webhook worker: sending %s failed", delivery.message_id)
                    outcome = sender.Outcome(None, f"Internal error: {type(error).__name__}")
                self.results.put((delivery, outcome, timezone.now()))
                delivery, back = self.lanes.finished(delivery, outcome.ok)
                for other in back:
                    self.results.put((other, None, timezone.now()))
