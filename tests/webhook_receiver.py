"""A real HTTP receiver on 127.0.0.1 that verifies every request with the standardwebhooks library."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    id: str
    headers: dict[str, str]
    body: dict
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    secrets: list[str] = field(default_factory=list)  # every one must verify the request
    statuses: list[int] = field(default_factory=list)  # answers, in order; then 200
    delay: float = 0.0  # seconds before answering
    received: list[Received] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)  # a request arrived

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                receiver.handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers["Content-Length"])
        raw = request.rfile.read(length)
        if len(raw) < length:  # the sender died mid-request: no delivery, as for any HTTP server
            return
        self.started.set()
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            for secret in self.secrets:
                Webhook(secret).verify(raw, headers)
        except WebhookVerificationError as error:
            self.unverified.append(f"{headers.get('webhook-id')}: {error}")
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.received.append(Received(headers.get("webhook-id", ""), headers, json.loads(raw), time.time()))
        request.send_response(status)
        if status in (301, 302, 307, 308):
            request.send_header("Location", "/elsewhere")
        request.send_header("Content-Length", "0")
        request.end_headers()

    def event_ids(self) -> set[int]:
        with self.lock:
            return {r.body["data"]["id"] for r in self.received if r.body["type"].startswith("thread.")}

    def wait_for(self, count: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while len(self.event_ids()) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
