"""Delivery to a real local receiver that verifies every signature with the standardwebhooks
library: the worker in this process (``loop.run``) and as ``manage.py deliver_webhooks``
processes, started, stopped with SIGTERM and killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from threads import feed
from threads.models import Event
from threads.services import thread_create, thread_update
from threads.webhooks import loop
from threads.webhooks.models import Delivery
from threads.webhooks.services import delivery_retry, endpoint_create, endpoint_rotate_secret, endpoint_update

from .conftest import ACTOR
from .test_commands import subprocess_env
from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

LOOPBACK = "127.0.0.0/8"
WORKER_ENV = {"WEBHOOK_ALLOWED_NETWORKS": LOOPBACK, "WEBHOOK_TIMEOUT_SECONDS": "5", "LOG_LEVEL": "WARNING"}


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = [LOOPBACK]
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def hook(org, receiver):
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [endpoint.secret]
    return endpoint


def deliver_now() -> None:
    loop.run(threading.Event(), once=True)


def new_thread(org, title="t"):
    return thread_create(org=org, actor=ACTOR, data={"title": title})


def events_of(org) -> list[Event]:
    return list(Event.objects.filter(organization=org).order_by("id"))


class Worker:
    """``manage.py deliver_webhooks`` against the test database, in its own process group."""

    def __init__(self, *args: str, log: Path, env: dict | None = None) -> None:
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(django_settings.BASE_DIR) / "manage.py"), "deliver_webhooks", *args],
            env={**subprocess_env(), **WORKER_ENV, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, signum: int) -> None:
        os.killpg(self.proc.pid, signum)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
            if code not in (0, -signal.SIGKILL):
                print(Path(self.log.name).read_text()[-20000:])  # shown with the failure
            return code
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGUSR1)  # its threads' stacks, into the log
            time.sleep(1)
            raise AssertionError(f"the worker did not stop:\n{Path(self.log.name).read_text()[-20000:]}") from None
        finally:
            self.log.close()


def write_concurrently(org, threads, n_writes: int, committed=None, pause: float = 0.0) -> None:
    """One writer a thread, all at once, each making ``n_writes`` PATCHes; ``committed(event_id)``
    is called as each returns."""

    def write(thread):
        try:
            for n in range(n_writes):
                thread_update(org=org, thread_id=thread.pk, patch={"metadata": {f"k{n}": str(n)}}, actor=ACTOR)
                if committed:
                    committed(Event.objects.filter(thread_id=thread.pk).order_by("-id").values_list("id")[0][0])
                time.sleep(pause)
        finally:
            connection.close()

    writers = [threading.Thread(target=write, args=(t,)) for t in threads]
    for w in writers:
        w.start()
    for w in writers:
        w.join()


@pytest.fixture
def workers(tmp_path):
    started: list[Worker] = []

    def start(*args: str, env: dict | None = None) -> Worker:
        started.append(Worker(*args, log=tmp_path / "worker.log", env=env))
        return started[-1]

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.signal(signal.SIGKILL)
            w.proc.wait(timeout=10)
        w.log.close()


def test_every_event_of_eight_concurrent_writers_arrives_signed_within_two_seconds(org, hook, receiver, workers):
    threads = [new_thread(org, f"t{n}") for n in range(8)]
    worker_proc = workers()
    time.sleep(1.5)  # the worker is up and idle: measure delivery from a commit
    committed = time.time()
    thread_update(org=org, thread_id=threads[0].pk, patch={"metadata": {"first": "1"}}, actor=ACTOR)
    receiver.wait_for(1, seconds=10)
    assert receiver.received, "nothing arrived"
    assert receiver.received[0].at - committed < 2.0

    write_concurrently(org, threads, 12)
    expected = events_of(org)  # all made after the endpoint: the threads' creation too
    assert len(expected) == 8 + 1 + 8 * 12
    receiver.wait_for(len(expected))
    assert worker_proc.stop() == 0
    assert receiver.unverified == []
    assert receiver.event_ids() == {e.id for e in expected}
    by_event = {}
    for r in receiver.received:
        by_event.setdefault(r.body["data"]["id"], set()).add(r.id)
    assert all(len(ids) == 1 for ids in by_event.values())  # one webhook-id per event, every attempt
    first = next(r for r in receiver.received if r.body["data"]["id"] == expected[-1].id)
    assert first.body == {
        "type": "thread.updated",
        "timestamp": feed.event_json(expected[-1])["createdAt"],
        "data": feed.event_json(expected[-1]),
    }
    assert first.headers["content-type"] == "application/json"
    assert abs(int(first.headers["webhook-timestamp"]) - first.at) < 5
    assert Delivery.objects.filter(status="succeeded").count() == len(expected)


def test_events_made_while_no_worker_runs_are_delivered_by_once_which_exits_0(org, hook, receiver, workers):
    thread = new_thread(org)
    for n in range(5):
        thread_update(org=org, thread_id=thread.pk, patch={"tags": [f"t{n}"]}, actor=ACTOR)
    before_endpoint = events_of(org)
    assert receiver.received == []
    once = workers("--once")
    assert once.proc.wait(timeout=60) == 0
    assert receiver.event_ids() == {e.id for e in before_endpoint}
    assert receiver.unverified == []


def test_an_endpoint_receives_only_events_committed_after_its_creation(org, receiver):
    thread = new_thread(org)
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [endpoint.secret]
    thread_update(org=org, thread_id=thread.pk, patch={"title": "after"}, actor=ACTOR)
    deliver_now()
    assert [r.body["type"] for r in receiver.received] == ["thread.updated"]


def test_failed_attempts_are_retried_with_the_same_webhook_id(org, hook, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [0, 0, 0]
    receiver.statuses = [500, 503, 200]
    new_thread(org)
    for _ in range(3):
        deliver_now()  # each run attempts each delivery at most once
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"msg_{Delivery.objects.get().pk}"] * 3
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None


def test_a_failed_attempt_waits_for_the_schedule_and_the_last_one_fails_the_delivery(org, hook, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = [300]
    receiver.statuses = [500, 500, 200]
    new_thread(org)
    deliver_now()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert 299 < (delivery.next_attempt_at - delivery.created_at).total_seconds() < 310
    deliver_now()  # not due yet
    assert len(receiver.received) == 1
    Delivery.objects.update(next_attempt_at=delivery.created_at)
    deliver_now()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("failed", 2, "The receiver answered 500.")
    assert delivery_retry(delivery)  # the admin's retry: one more attempt
    deliver_now()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    assert len({r.id for r in receiver.received}) == 1


def test_redirects_are_not_followed(org, hook, receiver):
    receiver.statuses = [302]
    new_thread(org)
    deliver_now()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.last_status_code) == ("pending", 302)
    assert len(receiver.received) == 1  # /elsewhere was never asked


def test_an_answer_slower_than_the_timeout_is_a_failed_attempt(org, hook, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    new_thread(org)
    deliver_now()
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error == "No answer within 0.3 s."


def test_an_address_refused_after_resolution_at_delivery_is_never_contacted(org, hook, receiver, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []  # the endpoint was accepted while loopback was allowed
    new_thread(org)
    deliver_now()
    delivery = Delivery.objects.get()
    assert receiver.received == []
    assert (delivery.status, delivery.last_status_code) == ("pending", None)
    assert "non-public address (127.0.0.1)" in delivery.last_error


def test_an_unreachable_receiver_is_a_failed_attempt(org, receiver, settings):
    receiver.close()
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    new_thread(org)
    deliver_now()
    delivery = Delivery.objects.get(endpoint=endpoint)
    assert delivery.attempts == 1 and delivery.last_error.startswith("Connection failed")


def test_actions_filter_and_an_inactive_endpoint_gets_nothing(org, receiver):
    endpoint = endpoint_create(org=org, data={"url": receiver.url, "actions": ["message_added", "deleted"]})
    receiver.secrets = [endpoint.secret]
    thread = new_thread(org)
    from threads.services import message_add, thread_delete

    message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": "hi"}, actor=ACTOR)
    deliver_now()
    assert [r.body["type"] for r in receiver.received] == ["thread.message_added"]

    endpoint_update(org=org, endpoint_id=endpoint.pk, data={"isActive": False})
    thread_update(org=org, thread_id=thread.pk, patch={"title": "while off"}, actor=ACTOR)
    message_add(org=org, thread_id=thread.pk, data={"role": "user", "content": "missed"}, actor=ACTOR)
    deliver_now()
    endpoint_update(org=org, endpoint_id=endpoint.pk, data={"isActive": True})
    thread_delete(org=org, thread_id=thread.pk, actor=ACTOR)
    deliver_now()
    assert [r.body["type"] for r in receiver.received] == ["thread.message_added", "thread.deleted"]
    assert receiver.unverified == []


def test_after_a_rotation_both_secrets_sign(org, hook, receiver):
    old = hook.secret
    new = endpoint_rotate_secret(org=org, endpoint_id=hook.pk).secret
    receiver.secrets = [old, new]  # the receiver checks each of them alone
    new_thread(org)
    deliver_now()
    assert len(receiver.received) == 1 and receiver.unverified == []
    assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2


def test_sigterm_lets_the_attempt_in_flight_finish_and_exits_0(org, hook, receiver, workers):
    receiver.delay = 1.5
    w = workers()
    new_thread(org)
    assert receiver.started.wait(15)
    w.signal(signal.SIGTERM)
    assert w.proc.wait(timeout=15) == 0
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)


def test_signals_that_keep_coming_while_the_worker_stops_still_end_in_exit_0(org, hook, receiver, workers):
    # A supervisor (or a test's stop()) may signal again while the worker shuts down; the last
    # moments of a Python process's shutdown put back the signals' default action (death).
    w = workers()
    new_thread(org)
    receiver.wait_for(1, seconds=15)
    w.signal(signal.SIGTERM)
    while w.proc.poll() is None:
        w.signal(signal.SIGTERM)
        time.sleep(0.001)
    assert w.proc.returncode == 0


def test_two_workers_one_killed_mid_run_lose_nothing(org, hook, receiver, workers):
    receiver.delay = 1.0  # long enough that the first worker is still waiting when it is killed
    thread = new_thread(org)
    first = workers()
    for n in range(20):
        thread_update(org=org, thread_id=thread.pk, patch={"variables": {"n": str(n)}}, actor=ACTOR)
    assert receiver.started.wait(15)  # the first worker has attempts in flight
    second = workers()
    first.signal(signal.SIGKILL)
    for n in range(20, 40):
        thread_update(org=org, thread_id=thread.pk, patch={"variables": {"n": str(n)}}, actor=ACTOR)
    expected = {e.id for e in events_of(org)}
    receiver.wait_for(len(expected), seconds=90)
    # The attempts the killed worker had in flight may have reached the receiver: they are made
    # again once their lease runs out (WEBHOOK_TIMEOUT_SECONDS + 5 s, one timeout more for each pair
    # queued behind them in the killed worker's lane).
    deadline = time.monotonic() + 60
    while Delivery.objects.exclude(status="succeeded").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert second.stop() == 0
    assert first.proc.wait(timeout=5) == -signal.SIGKILL
    assert receiver.event_ids() == expected
    assert receiver.unverified == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}, list(Delivery.objects.values())
    # What the killed worker had in flight was attempted again once its lease ran out.
    assert Delivery.objects.filter(attempts__gte=2).exists()
