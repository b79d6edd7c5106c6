"""One HTTP attempt: sign, connect to the checked address, POST, never follow a redirect."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import urllib3
from standardwebhooks import Webhook

from threads.errors import ThreadError

from . import safety

USER_AGENT = "thread-service-webhooks/1"


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


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Outcome:
    """POST ``body`` to ``url``, resolving its host once and connecting to that checked address
    (with the URL's own host in ``Host`` and, for https, in SNI and the certificate check)."""
    try:
        parts = safety.parse_url(url)
        address = safety.delivery_address(parts)
    except ThreadError as error:
        return Outcome(None, error.message)
    except (OSError, UnicodeError) as error:
        return Outcome(None, f"DNS resolution failed: {error}")
    host = parts.hostname
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            str(address), port, server_hostname=host, assert_hostname=host, retries=False
        )
    else:
        pool = urllib3.HTTPConnectionPool(str(address), port, retries=False)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    host_header = f"[{host}]" if ":" in host else host
    if parts.port and parts.port != default_port:
        host_header += f":{parts.port}"
    headers = {"Host": host_header, "User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
    try:
        with pool:
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
            )
            response.close()  # the answer's body is not read: only its status counts
    except urllib3.exceptions.NewConnectionError as error:  # a subclass of the timeout error
        return Outcome(None, f"Connection failed: {error}"[:500])
    except urllib3.exceptions.TimeoutError:
        return Outcome(None, f"No answer within {timeout:g} s.")
    except urllib3.exceptions.HTTPError as error:
        return Outcome(None, f"Connection failed: {error}"[:500])
    if 200 <= response.status < 300:
        return Outcome(response.status)
    return Outcome(response.status, f"The receiver answered {response.status}.")
