"""Rate limits: 429 in the envelope with Retry-After, per key / user / address; shared through
Redis when it is configured."""

import socket

import pytest
from django.test import override_settings

from threads.keys import api_key_create

from .conftest import Api, url

pytestmark = pytest.mark.django_db

LOW = {"api_key": "3/min", "user": "2/min", "chat_token": "2/min", "login": "2/min"}


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@override_settings(THROTTLE_RATES=LOW)
def test_an_api_key_over_its_rate_gets_429_with_retry_after(api, thread):
    assert [api.get(url(thread)).status_code for _ in range(3)] == [200, 200, 200]
    response = api.get(url(thread))
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(response["Retry-After"]) <= 61


@override_settings(THROTTLE_RATES=LOW)
def test_each_key_has_its_own_budget(api, org, thread):
    for _ in range(3):
        api.get(url(thread))
    assert api.get(url(thread)).status_code == 429
    other = Api(api_key_create(org=org, name="second")[1])
    assert other.get(url(thread)).status_code == 200


@override_settings(THROTTLE_RATES=LOW)
def test_users_are_limited_too(member_api, thread):
    assert [member_api.get(url(thread)).status_code for _ in range(3)] == [200, 200, 429]


@override_settings(THROTTLE_RATES=LOW)
def test_login_attempts_are_limited_per_address(member, client):
    def attempt():
        return client.post(
            "/api/v1/auth/token", {"username": "mia", "password": "wrong"}, content_type="application/json"
        ).status_code

    assert [attempt(), attempt(), attempt()] == [401, 401, 429]


def on_redis(prefix: str):
    """A test with the low rates and its counters in Redis (database 15, under ``prefix``)."""
    cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/15",
        "KEY_PREFIX": prefix,
    }

    def wrap(test):
        test = override_settings(THROTTLE_RATES=LOW, CACHES={"default": cache})(test)
        return pytest.mark.skipif(not redis_up(), reason="Redis is not running on 127.0.0.1:6379")(test)

    return wrap


@on_redis("threads-test")
def test_counters_are_shared_through_redis(api, thread):
    from django.core.cache import cache

    cache.clear()
    assert [api.get(url(thread)).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert any(k for k in cache._cache.get_client().keys("threads-test:*throttle*"))
    cache.clear()


@on_redis("threads-test-ttl")
def test_a_redis_counter_expires_after_its_window(api, thread):
    from django.core.cache import cache

    cache.clear()
    assert api.get(url(thread)).status_code == 200
    client = cache._cache.get_client()
    [key] = client.keys("threads-test-ttl:*throttle*")
    assert int(client.get(key)) == 1 and 0 < client.ttl(key) <= 61
    cache.clear()
