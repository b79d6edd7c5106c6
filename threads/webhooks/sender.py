"""HTTP attempts: sign, connect to the checked address, POST, never follow a redirect.

``Connections`` keeps a small pool of kept-alive connections per endpoint (as many as the
endpoint may have attempts in flight), so that a busy endpoint is not paying a TCP (and TLS)
handshake per delivery. The address a name resolves to is checked on every attempt; a resolution
is reused for ``ADDRESS_TTL`` seconds, and the connections always go to the address checked.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import urllib3
from standardwebhooks import Webhook

from threads.errors import ThreadError

from . import safety

USER_AGENT = "thread-service-webhooks/1"
ADDRESS_TTL = 30.0  # seconds a name's checked address is reused (a DNS change is seen this late)
IDLE_POOL_SECONDS = 120.0  # an endpoint's connections unused this long are closed
MAX_ANSWER_BYTES = 64 * 1024  # of an answer's body read (and thrown away) to keep its connection


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # None: no answer (refused address, DNS, connection, timeout)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secrets: list[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` entry per secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id, timestamp, body) for secret in secrets)


class Connections:
    """Kept-alive connections, per endpoint; safe to share between the sender threads."""

    def __init__(self, per_endpoint: int) -> None:
        self.per_endpoint = per_endpoint
        self.lock = threading.Lock()
        self.pools: dict[tuple, tuple[urllib3.HTTPConnectionPool, float]] = {}
        self.addresses: dict[tuple[str, int], tuple[safety.IPAddress, float]] = {}

    def post(self, key, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
        """POST ``body`` to ``url`` for the endpoint ``key``, connecting to the checked address
        (with the URL's own host in ``Host`` and, for https, in SNI and the certificate check)."""
        try:
            parts = safety.parse_url(url)
            address = self._address(parts)
        except ThreadError as error:
            return Outcome(None, error.message)
        except (OSError, UnicodeError) as error:
            return Outcome(None, f"DNS resolution failed: {error}")
        host = parts.hostname
        default_port = 443 if parts.scheme == "https" else 80
        port = parts.port or default_port
        pool = self._pool(key, parts.scheme, host, address, port)
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        host_header = f"[{host}]" if ":" in host else host
        if parts.port and parts.port != default_port:
            host_header += f":{parts.port}"
        headers = {"Host": host_header, "User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
        try:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=urllib3.Timeout(total=timeout),
                assert_same_host=False,
                preload_content=False,
                release_conn=False,
            )
            try:
                # Only the status counts; the body is read (up to a bound) so the connection can be reused.
                rest = response.read(MAX_ANSWER_BYTES + 1, decode_content=False)
                keep = len(rest) <= MAX_ANSWER_BYTES
            except urllib3.exceptions.HTTPError:
                keep = False
            if keep:
                response.release_conn()
            else:
                response.close()
                response.release_conn()
        except urllib3.exceptions.NewConnectionError as error:  # a subclass of the timeout error
            self._forget(parts)
            return Outcome(None, f"Connection failed: {error}"[:500])
        except urllib3.exceptions.TimeoutError:
            return Outcome(None, f"No answer within {timeout:g} s.")
        except urllib3.exceptions.HTTPError as error:
            return Outcome(None, f"Connection failed: {error}"[:500])
        if 200 <= response.status < 300:
            return Outcome(response.status)
        return Outcome(response.status, f"The receiver answered {response.status}.")

    def _address(self, parts) -> safety.IPAddress:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        now = time.monotonic()
        with self.lock:
            cached = self.addresses.get((parts.hostname, port))
        if cached and cached[1] > now:
            safety.check_address(cached[0])  # the allowed networks are checked again every time
            return cached[0]
        address = safety.delivery_address(parts)
        with self.lock:
            self.addresses[(parts.hostname, port)] = (address, now + ADDRESS_TTL)
        return address

    def _forget(self, parts) -> None:
        with self.lock:
            self.addresses.pop((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)), None)

    def _pool(self, key, scheme: str, host: str, address, port: int) -> urllib3.HTTPConnectionPool:
        pool_key = (key, scheme, host, str(address), port)
        now = time.monotonic()
        with self.lock:
            found = self.pools.get(pool_key)
            if found is None:
                if scheme == "https":
                    pool = urllib3.HTTPSConnectionPool(
                        str(address),
                        port,
                        server_hostname=host,
                        assert_hostname=host,
                        retries=False,
                        maxsize=self.per_endpoint,
                    )
                else:
                    pool = urllib3.HTTPConnectionPool(str(address), port, retries=False, maxsize=self.per_endpoint)
            else:
                pool = found[0]
            self.pools[pool_key] = (pool, now)
            idle = [k for k, (_, used) in self.pools.items() if now - used > IDLE_POOL_SECONDS]
            closing = [self.pools.pop(k)[0] for k in idle]
        for old in closing:
            old.close()
        return pool

    def close(self) -> None:
        with self.lock:
            pools, self.pools = list(self.pools.values()), {}
        for pool, _ in pools:
            pool.close()
