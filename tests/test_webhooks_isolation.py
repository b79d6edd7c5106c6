"""One hung receiver cannot stall the others: per-endpoint in-flight limits, fair claims, the
circuit breaker (open, probe, close, disable, re-enable), --once bounded in time, kept-alive
connections, and the worker's flags. Hung receivers are sockets that accept and never answer;
refusing ones are closed ports."""

# ruff: noqa: F811 - the receiver and workers fixtures are imported from test_webhooks_delivery

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from threads.services import thread_update
from threads.webhooks import breaker, loop, sender, worker
from threads.webhooks.models import Delivery, WebhookEndpoint
from threads.webhooks.services import endpoint_create

from .conftest import ACTOR
from .test_commands import subprocess_env
from .test_webhooks_delivery import (  # noqa: F401 - fixtures
    LOOPBACK,
    deliver_now,
    events_of,
    new_thread,
    receiver,
    workers,
    write_concurrently,
)
from .webhook_receiver import Hung, refusing_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hung():
    made: list[Hung] = []

    def make() -> Hung:
        made.append(Hung())
        return made[-1]

    yield make
    for h in made:
        h.close()


def fleet(org, receiver, hung):
    """One healthy endpoint, two hung ones and one refusing, in one organization."""
    healthy = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [healthy.secret]
    hung_receivers = [hung(), hung()]
    for h in hung_receivers:
        endpoint_create(org=org, data={"url": h.url})
    refusing = endpoint_create(org=org, data={"url": refusing_url()})
    return healthy, hung_receivers, refusing


def arrivals_by_event(receiver) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in receiver.received:
        out.setdefault(r.body["data"]["id"], []).append(r.at)
    return out


def test_hung_and_refusing_endpoints_never_delay_the_healthy_one_under_eight_writers(org, receiver, hung, workers):
    healthy, hung_receivers, _ = fleet(org, receiver, hung)
    threads = [new_thread(org, f"t{n}") for n in range(8)]  # made while no worker runs: a backlog
    env = {"WEBHOOK_TIMEOUT_SECONDS": "5"}  # a hung attempt holds its sender 5 s
    two = [workers(env=env), workers(env=env)]
    receiver.wait_for(8, seconds=30)
    assert len(receiver.event_ids()) == 8, "the backlog did not reach the healthy endpoint"
    committed: dict[int, float] = {}
    lock = threading.Lock()

    def note(event_id: int) -> None:
        at = time.time()
        with lock:
            committed[event_id] = at

    write_concurrently(org, threads, 12, committed=note, pause=0.02)
    expected = {e.id for e in events_of(org)}
    assert len(expected) == 8 + 8 * 12
    receiver.wait_for(len(expected), seconds=60)
    for w in two:
        w.signal(signal.SIGTERM)
    for w in two:
        assert w.stop() == 0  # the hung attempts in flight end at their timeout
    assert receiver.unverified == []
    arrivals = arrivals_by_event(receiver)
    assert set(arrivals) == expected
    # No attempt to the healthy endpoint failed, so at-least-once allows exactly one each.
    assert all(len(times) == 1 for times in arrivals.values())
    assert set(Delivery.objects.filter(endpoint=healthy).values_list("status", "attempts")) == {("succeeded", 1)}
    # Far below the 5 s a hung attempt holds a sender: nothing queued behind the hung receivers.
    latencies = [arrivals[event_id][0] - at for event_id, at in committed.items()]
    assert max(latencies) < 2.0, (statistics.median(latencies), max(latencies))
    for h in hung_receivers:  # never more than WEBHOOK_ENDPOINT_CONCURRENCY over both workers
        assert 1 <= h.max_open <= 2


def test_once_with_hung_endpoints_delivers_the_healthy_backlog_and_exits_0_in_time(org, receiver, hung, workers):
    healthy, hung_receivers, refusing = fleet(org, receiver, hung)
    thread = new_thread(org)
    for n in range(20):
        thread_update(org=org, thread_id=thread.pk, patch={"tags": [f"t{n}"]}, actor=ACTOR)
    timeout = 3
    once = workers("--once", env={"WEBHOOK_TIMEOUT_SECONDS": str(timeout)})
    assert once.proc.wait(timeout=60) == 0
    elapsed = time.monotonic() - once.started
    # The timeout, --once's 2 s, and the start of a Django process on a busy machine.
    assert elapsed < timeout + 2 + 4, elapsed
    assert receiver.event_ids() == {e.id for e in events_of(org)}
    others = Delivery.objects.exclude(endpoint=healthy)
    assert max(others.values_list("attempts", flat=True)) == 1  # each delivery one attempt at most
    for h in hung_receivers:
        assert h.accepted <= 2  # the endpoint's in-flight limit; it failed, so not tried again
    assert 1 <= Delivery.objects.filter(endpoint=refusing, attempts=1).count() <= 2  # its first claim only


def test_the_breaker_opens_probes_one_at_a_time_and_closes_when_a_probe_succeeds(org, receiver, settings):
    settings.WEBHOOK_BREAKER_FAILURES = 3
    settings.WEBHOOK_RETRY_SCHEDULE = [1] * 8  # probes a second apart; deliveries retried a second later
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [endpoint.secret]
    receiver.fail_with = 503
    thread = new_thread(org)
    for n in range(7):
        thread_update(org=org, thread_id=thread.pk, patch={"tags": [f"t{n}"]}, actor=ACTOR)
    stop = threading.Event()
    running = threading.Thread(target=loop.run, args=(stop,))
    running.start()
    try:
        deadline = time.monotonic() + 20
        while WebhookEndpoint.objects.get(pk=endpoint.pk).next_probe_at is None and time.monotonic() < deadline:
            time.sleep(0.02)
        opened = WebhookEndpoint.objects.get(pk=endpoint.pk)
        assert opened.next_probe_at is not None, "the circuit never opened"
        assert opened.consecutive_failures >= 3 and opened.failing_since is not None
        requests_when_open = len(receiver.received)
        assert requests_when_open <= 3 + 1  # the failures that opened it (one more may have been in flight)
        time.sleep(2.6)
        probes = len(receiver.received) - requests_when_open
        # 8 deliveries retried every second would be ~20 requests; the open circuit makes 2 or 3.
        assert 1 <= probes <= 3, probes
        assert receiver.max_in_flight <= 2
        receiver.fail_with = None
        receiver.wait_for(8, seconds=15)  # the next probe succeeds: the backlog flows
        assert receiver.event_ids() == {e.id for e in events_of(org)}
    finally:
        stop.set()
        running.join(timeout=30)
    closed = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert (closed.consecutive_failures, closed.failing_since, closed.next_probe_at) == (0, None, None)
    assert closed.is_active and closed.disabled_reason == ""


def test_an_endpoint_failing_longer_than_the_window_is_disabled_with_its_reason_and_re_enabled(
    org, api, admin_client, receiver, settings
):
    settings.WEBHOOK_ALLOWED_NETWORKS = [LOOPBACK]
    endpoint = endpoint_create(org=org, data={"url": refusing_url()})
    thread = new_thread(org)
    deliver_now()
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1 and endpoint.is_active
    # The clock moved: it has been failing for longer than the window when its next attempt fails.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    Delivery.objects.update(next_attempt_at=timezone.now())
    deliver_now()
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_at is not None
    assert endpoint.disabled_reason.startswith("Disabled after failing since ")
    assert "2 failed attempts in a row" in endpoint.disabled_reason
    assert "Connection failed" in endpoint.disabled_reason

    body = api.get(f"/api/v1/webhooks/{endpoint.pk}").json()
    assert (body["isActive"], body["disabledReason"]) == (False, endpoint.disabled_reason)
    page = api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").json()
    assert page["endpoint"]["disabledReason"] == endpoint.disabled_reason
    assert page["endpoint"]["isActive"] is False and page["results"][0]["attempts"] == 2
    assert "disabled: Disabled after failing" in admin_client.get("/admin/webhooks/webhookendpoint/").text
    assert "disabled: Disabled after failing" in admin_client.get("/admin/webhooks/delivery/").text

    thread_update(org=org, thread_id=thread.pk, patch={"title": "while disabled"}, actor=ACTOR)
    deliver_now()
    assert Delivery.objects.count() == 1  # a disabled endpoint gets nothing new

    # One PATCH re-enables it (here also pointing it at a receiver that answers).
    response = api.patch(f"/api/v1/webhooks/{endpoint.pk}", {"isActive": True, "url": receiver.url})
    assert response.status_code == 200, response.content
    assert (response.json()["disabledReason"], response.json()["failingSince"]) == (None, None)
    receiver.secrets = [WebhookEndpoint.objects.get(pk=endpoint.pk).secret]
    thread_update(org=org, thread_id=thread.pk, patch={"title": "after"}, actor=ACTOR)
    deliver_now()
    # Its delivery still pending went out, and the events from the re-enabling on; not those between.
    assert sorted(r.body["data"]["action"] for r in receiver.received) == ["created", "updated"]
    assert [r.body["data"]["changes"] for r in receiver.received if r.body["type"] == "thread.updated"][0]["title"][
        "to"
    ] == "after"


def test_the_admin_re_enables_a_disabled_endpoint(admin_client, org):
    endpoint = endpoint_create(org=org, data={"url": "https://93.184.215.14/hooks"})
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_reason="Disabled after failing since …", consecutive_failures=40
    )
    response = admin_client.post(
        "/admin/webhooks/webhookendpoint/", {"action": "enable", "_selected_action": [endpoint.pk]}, follow=True
    )
    assert "1 endpoints are active" in response.text
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled_reason, endpoint.consecutive_failures) == (True, "", 0)


def due_backlog(org, count: int, per: int) -> list[WebhookEndpoint]:
    endpoints = [endpoint_create(org=org, data={"url": f"https://93.184.215.14/{n}"}) for n in range(count)]
    now = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(endpoint=e, event=None, next_attempt_at=now, created_at=now) for e in endpoints for _ in range(per)
    )
    return endpoints


def shares(claimed) -> dict:
    out: dict = {}
    for d in claimed:
        out[d.endpoint_id] = out.get(d.endpoint_id, 0) + 1
    return out


def test_claims_deal_senders_in_turn_and_respect_each_endpoints_in_flight_limit(org):
    endpoints = due_backlog(org, 3, per=10)
    first = worker.claim(5)
    assert sorted(shares(first).values()) == [1, 2, 2]
    assert all(d.leased_until is not None and d.attempts == 1 for d in first)
    # Another worker gets nothing of endpoints this one holds deliveries of: at most two requests at once.
    assert worker.claim(5) == []
    # This one may queue a healthy endpoint's batch (PREFETCH x 2 leased), its leases one attempt apart.
    second = worker.claim(100, held=shares(first))
    assert sorted(shares(second).values()) == [8, 8, 9]
    timeout = timedelta(seconds=django_settings.WEBHOOK_TIMEOUT_SECONDS)
    two = next(pk for pk, n in shares(first).items() if n == 2)  # its 2 in flight, 8 queued behind them
    leases = [min(d.leased_until for d in first if d.endpoint_id == two)]
    leases += sorted({d.leased_until for d in second if d.endpoint_id == two})
    assert len(leases) == 5 and all(abs(b - a - timeout) < timedelta(seconds=1) for a, b in pairwise(leases))
    worker.record([(d, sender.Outcome(204), timezone.now()) for d in first + second[:1]])
    worker.release(second[1:])
    assert Delivery.objects.filter(status="pending", leased_until=None).count() == 24
    assert set(Delivery.objects.filter(status="pending").values_list("attempts", flat=True)) == {0}
    served: dict = {}
    turns = []
    for _ in range(3):  # one sender at a time: each endpoint in turn, least recently served first
        claimed = worker.claim(1, served=served)
        served[claimed[0].endpoint_id] = len(turns)
        turns.append(claimed[0].endpoint_id)
        worker.record([(claimed[0], sender.Outcome(204), timezone.now())])
    assert set(turns) == {e.pk for e in endpoints}


def test_an_endpoint_is_leased_a_batch_only_once_it_has_answered_this_worker(org):
    # Endpoints that hang have not failed yet (their attempts wait for the timeout): were each
    # leased a batch, a few of them would hold the worker's whole budget and starve the others.
    endpoints = due_backlog(org, 3, per=40)
    first = worker.claim(100, proven=set())
    assert sorted(shares(first).values()) == [2, 2, 2]  # each its in-flight share, no more
    assert worker.claim(100, held=shares(first), proven=set()) == []
    answered = endpoints[0].pk
    second = worker.claim(100, held=shares(first), proven={answered})
    assert shares(second) == {answered: 38}  # the rest of its backlog, within its batch
    assert worker.limit(endpoints[0], True) == worker.PREFETCH * django_settings.WEBHOOK_ENDPOINT_CONCURRENCY


def test_an_open_circuit_gets_no_attempt_before_its_probe_time_and_then_one(org, settings):
    (endpoint,) = due_backlog(org, 1, per=5)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=5, next_probe_at=timezone.now() + timedelta(seconds=60)
    )
    assert worker.claim(10) == []
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(next_probe_at=timezone.now())
    assert len(worker.claim(10)) == 1
    assert worker.claim(10) == []  # the probe is in flight


def test_a_probe_that_fails_moves_the_next_one_along_the_schedule(org, settings):
    settings.WEBHOOK_BREAKER_FAILURES = 2
    settings.WEBHOOK_RETRY_SCHEDULE = [5, 300, 1800]
    (endpoint,) = due_backlog(org, 1, per=4)
    for expected in (None, 5, 300, 1800, 1800):
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            next_probe_at=None if expected is None else timezone.now()
        )
        Delivery.objects.update(next_attempt_at=timezone.now())
        claimed = worker.claim(1)
        before = timezone.now()
        worker.record([(claimed[0], sender.Outcome(None, "Connection failed: refused"), before)])
        endpoint.refresh_from_db()
        if expected is None:
            assert endpoint.next_probe_at is None and endpoint.consecutive_failures == 1
        else:
            delay = (endpoint.next_probe_at - before).total_seconds()
            assert expected - 1 < delay < expected + 5, (expected, delay)


def test_breaker_rules():
    rules = breaker.Rules(failures=3, schedule=[5, 60], disable_after=timedelta(days=5))
    now = timezone.now()
    fail, ok = (now, False, "The receiver answered 500."), (now, True, "")
    state = breaker.after(breaker.State(), [fail, fail], now, rules)
    assert (state.consecutive_failures, state.failing_since, state.next_probe_at) == (2, now, None)
    state = breaker.after(state, [fail], now, rules)
    assert state.next_probe_at == now + timedelta(seconds=5)
    assert breaker.after(state, [fail, fail], now, rules).next_probe_at == now + timedelta(seconds=60)
    assert breaker.after(state, [fail, ok], now, rules) == breaker.State()
    reopened = breaker.after(state, [ok, fail], now, rules)
    assert (reopened.consecutive_failures, reopened.next_probe_at) == (1, None)
    later = now + timedelta(days=5)
    gone = breaker.after(state, [(later, False, "No answer within 10 s.")], later, rules)
    assert "4 failed attempts in a row, the last: No answer within 10 s." in gone.disabled_reason
    assert breaker.in_flight_cap(None, 2) == 2 and breaker.in_flight_cap(now, 2) == 1


def test_deliveries_to_one_endpoint_reuse_its_connections(org, receiver):
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [endpoint.secret]
    thread = new_thread(org)
    for n in range(15):
        thread_update(org=org, thread_id=thread.pk, patch={"tags": [f"t{n}"]}, actor=ACTOR)
    deliver_now()
    assert len(receiver.event_ids()) == 16 and receiver.unverified == []
    assert len(receiver.connections) <= 2  # the endpoint's in-flight limit: at most two connections


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(Path(django_settings.BASE_DIR) / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concurrency", "0"], "--concurrency must be between 1 and 1000."),
        (["--concurrency", "1001"], "--concurrency must be between 1 and 1000."),
        (["--concurrency", "many"], "invalid int value: 'many'"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_worker_flags_are_one_line_and_exit_1(args, message):
    done = manage("deliver_webhooks", "--once", *args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("CommandError: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_receiver_that_answers_2xx_without_hurry_but_within_the_timeout_succeeds(org, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    receiver.delay = 0.3
    endpoint = endpoint_create(org=org, data={"url": receiver.url})
    receiver.secrets = [endpoint.secret]
    new_thread(org)
    started = time.monotonic()
    deliver_now()
    assert time.monotonic() - started < 2 + 2
    assert Delivery.objects.get().status == "succeeded"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
@pytest.mark.parametrize("pooler", ["", "transaction"])
def test_the_workers_commits_skip_the_wal_wait_but_never_touch_a_pooled_session(org, settings, pooler):
    settings.DATABASE_POOLER = pooler
    due_backlog(org, 1, per=2)
    connection.close()  # a connection of the worker's own
    claimed = worker.claim(2)
    assert len(claimed) == 2
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        # Behind a transaction pooler the setting lived in the claim's transaction only.
        assert cursor.fetchone()[0] == ("on" if pooler else "off")
    worker.record([(d, sender.Outcome(204), timezone.now()) for d in claimed])
    assert set(Delivery.objects.values_list("status", flat=True)) == {"succeeded"}
    connection.close()


def test_an_idle_worker_probes_no_endpoint_until_an_event_can_be_delivered(org, settings):
    """While nothing is new, a round reads only the feed's head: the probe of every endpoint runs
    again once an event commits."""
    from django.test.utils import CaptureQueriesContext

    from threads.webhooks import wake

    settings.WEBHOOK_ALLOWED_NETWORKS = [LOOPBACK]
    thread = new_thread(org)
    endpoints = [endpoint_create(org=org, data={"url": f"http://127.0.0.1:9/{n}"}) for n in range(3)]
    watch = wake.Watch()
    assert watch.endpoints_with_news() == []
    watch.counted(False, 0)

    def probes() -> tuple[list, int]:
        with CaptureQueriesContext(connection) as queries:
            news = watch.endpoints_with_news()
        return news, sum("webhooks_webhookendpoint" in q["sql"] for q in queries.captured_queries)

    assert probes() == ([], 0)
    assert probes() == ([], 0)
    thread_update(org=org, thread_id=thread.pk, patch={"metadata": {"n": "1"}}, actor=ACTOR)
    news, count = probes()
    assert count == 1 and sorted(news) == sorted(e.pk for e in endpoints)


def test_a_claim_names_the_endpoints_it_gave_their_whole_share(org):
    endpoints = due_backlog(org, 3, per=10)
    assert worker.claim(5).full == {e.pk for e in endpoints}  # dealt 1, 2, 2: the budget ran out first
    short = due_backlog(org, 1, per=3)[0]
    claimed = worker.claim(100, exclude=[e.pk for e in endpoints])
    assert shares(claimed) == {short.pk: 3} and claimed.full == set()  # all it had due: nothing more waits


def test_a_backlog_larger_than_the_workers_budget_flows_without_waiting_for_the_next_round_of_claims(
    org, receiver, monkeypatch
):
    # Four endpoints with 40 due and one sender (a budget of 4 held at once): every claim is cut by
    # the budget, not by an endpoint's limit. The next one comes as soon as outcomes free the
    # budget; the periodic round of claims never comes here (an hour apart).
    monkeypatch.setattr(loop, "CLAIM_SECONDS", 3600)
    endpoints = [endpoint_create(org=org, data={"url": f"{receiver.url}/{n}"}) for n in range(4)]
    now = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(endpoint=e, event=None, next_attempt_at=now, created_at=now) for e in endpoints for _ in range(10)
    )
    stop = threading.Event()
    running = threading.Thread(target=loop.run, args=(stop,), kwargs={"concurrency": 1})
    running.start()
    try:
        deadline = time.monotonic() + 30
        while len(receiver.received) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        running.join(timeout=30)
    assert len(receiver.received) == 40
    assert Delivery.objects.filter(status="succeeded").count() == 40
