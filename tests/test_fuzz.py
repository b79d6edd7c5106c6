"""Schemathesis against the service's own OpenAPI document, served by a live server.

Every operation the document lists (so the seed surfaces too, once they are in it) is called with
generated requests, valid and invalid, with a write-scoped API key (or, on a thread's routes, now
and then that thread's chat token); each response must be no 5xx, have a documented status code
and content type, and match the documented schema. Thread ids in paths are mostly real threads of
the key's organization, so the generated bodies reach the merge rules instead of stopping at a
404. Seeded: a failure is reproduced by running the test again.

Environment: FUZZ_MAX_EXAMPLES (default 40 per operation and phase), FUZZ_SEED (default fixed).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
import requests
import schemathesis
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks as st_checks

from threads.api.tokens import ChatToken
from threads.keys import api_key_create
from threads.models import Organization, Thread
from threads.services import thread_create
from threads.webhooks.models import WebhookEndpoint
from threads.webhooks.services import endpoint_create

from .conftest import ACTOR

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
]
THREADS = 4  # real threads whose ids the path parameters draw from
# Path parameters that name a thread, on the canonical routes and the seed-compatible ones.
THREAD_ID_PARAMETERS = ("thread_id", "threadId", "id")


def served_document() -> dict:
    """The OpenAPI document exactly as ``GET /api/schema/`` serves it (no database involved)."""
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


DOCUMENT = served_document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict({"seed": SEED, "generation": {"mode": "all", "max-examples": MAX_EXAMPLES}}),
)
STATUSES: Counter[int] = Counter()


class World:
    """The organization, key and threads that the generated requests act on."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.org = Organization.objects.create(slug="fuzz", name="Fuzz")
        self.key = api_key_create(org=self.org, name="fuzzer", scope="write")[1]
        self.thread_ids = [str(self._make().pk) for _ in range(THREADS)]
        self.hook_ids = [self._hook() for _ in range(THREADS)]

    def _make(self) -> Thread:
        data = {"title": "fuzz", "metadata": {"a": "1"}, "tags": ["fuzz"]}
        return thread_create(org=self.org, actor=ACTOR, data=data)

    def _hook(self) -> str:
        return str(endpoint_create(org=self.org, data={"url": "https://93.184.215.14/fuzz"}).pk)

    def restore(self) -> None:
        """Replace the pool threads and webhook endpoints that a generated DELETE removed (a deleted
        thread's id stays used)."""
        present = {str(pk) for pk in Thread.objects.filter(pk__in=self.thread_ids).values_list("pk", flat=True)}
        self.thread_ids[:] = [i if i in present else str(self._make().pk) for i in self.thread_ids]
        hooks = {str(pk) for pk in WebhookEndpoint.objects.filter(pk__in=self.hook_ids).values_list("pk", flat=True)}
        self.hook_ids[:] = [i if i in hooks else self._hook() for i in self.hook_ids]

    def aim(self, case, n: int) -> str:
        """Point three cases in four at a real thread, and keep a generated ``If-Match`` (almost
        never the stored version: a 412 before the body is read) one time in five, else drop it
        or send the real version, so that generated bodies reach the merge rules. Every phase's
        cases (examples, coverage, fuzzing) go through here. Returns the credential to send: the
        API key, or one time in four on a real thread that thread's chat token (the seed web-chat
        surface accepts nothing else; the canonical routes must refuse it most things)."""
        params = case.path_parameters or {}
        if "webhook_id" in params and n % 4:  # mostly a real endpoint of the key's organization
            params["webhook_id"] = self.hook_ids[n % len(self.hook_ids)]
        name = next((name for name in (*THREAD_ID_PARAMETERS, "conversation_id") if name in params), None)
        if name is None or n % 4 == 0:
            return self.key
        thread = Thread.objects.get(pk=self.thread_ids[n % len(self.thread_ids)])
        params[name] = f"conv_{thread.pk.hex}" if name == "conversation_id" else str(thread.pk)
        if case.headers and "If-Match" in case.headers and n % 5:
            if n % 2:
                del case.headers["If-Match"]
            else:
                case.headers["If-Match"] = f'"{thread.version}"'
        return str(ChatToken.for_thread(thread)) if n % 4 == 3 else self.key


@pytest.fixture
def world(live_server, transactional_db, settings, figures):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "login": ""}  # reach simplejwt, not the 429
    figures.setdefault("fuzz", STATUSES)
    world = World(live_server.url)
    served = requests.get(f"{world.base_url}/api/schema/", params={"format": "json"}, timeout=30).json()
    assert served == DOCUMENT  # the live server serves the document the cases come from
    return world


@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_documented_operation_answers_as_documented(case, world):
    credential = world.aim(case, STATUSES.total())
    response = case.call_and_validate(
        base_url=world.base_url, headers={"Authorization": f"Bearer {credential}"}, checks=CHECKS, timeout=30
    )
    STATUSES[response.status_code] += 1
    if case.method.upper() == "DELETE":
        world.restore()
