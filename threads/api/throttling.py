"""Rate limits per API key, per user, per chat token, and per client address at login.

Fixed-window counters in the default cache, shared by every worker when it is Redis
(``REDIS_URL``): one pipelined round trip a request there (``SET NX EX`` then ``INCR``, both
atomic); ``cache.add`` + ``cache.incr`` on the local-memory cache.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from .authentication import Principal

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def window_count(key: str, period: int) -> int:
    """Count one more hit in this window's counter (which expires after the window) and return
    the count."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        key = cache.make_and_validate_key(key)
        # Django's incr() costs two round trips after add()'s one: here the three are one.
        pipe = cache._cache.get_client(key, write=True).pipeline(transaction=False)
        pipe.set(key, 0, ex=period + 1, nx=True)
        pipe.incr(key)
        return pipe.execute()[1]
    cache.add(key, 0, period + 1)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, period + 1)
        return 1


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """``"600/min"`` -> ``(600, 60)``; empty means unlimited."""
    if not rate:
        return None
    count, period = rate.split("/")
    return int(count), UNITS[period.strip()[0]]


class _WindowThrottle(BaseThrottle):
    wait_seconds: float | None = None

    def _hit(self, ident: str, rate: str | None) -> bool:
        parsed = parse_rate(rate)
        if parsed is None:
            return True
        limit, period = parsed
        now = time.time()
        if window_count(f"throttle:{ident}:{int(now // period)}", period) > limit:
            self.wait_seconds = period - (now % period)
            return False
        return True

    def wait(self) -> float | None:
        return self.wait_seconds


class PrincipalThrottle(_WindowThrottle):
    """One budget per API key, per user and per chat-token thread (rates: ``THROTTLE_RATES``)."""

    def allow_request(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, Principal):
            return True
        return self._hit(principal.pk, settings.THROTTLE_RATES.get(principal.kind))


class LoginThrottle(_WindowThrottle):
    """Password attempts per client address."""

    def allow_request(self, request, view) -> bool:
        return self._hit(f"login:{self.get_ident(request)}", settings.THROTTLE_RATES.get("login"))
