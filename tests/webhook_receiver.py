"""Receivers on 127.0.0.1: a real HTTP one that verifies every request with the standardwebhooks
library (HTTP/1.1, keeping connections alive), one that accepts connections and never answers,
and an address that refuses them."""

from __future__ import annotations

import json
import socket
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
    fail_with: int | None = None  # when set (and statuses is empty): the answer to every request
    received: list[Received] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)  # a request arrived
    in_flight: int = 0
    max_in_flight: int = 0  # requests being answered at once, at most
    connections: set = field(default_factory=set)  # the client ports requests came from

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive

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
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.connections.add(request.client_address[1])
        try:
            self._answer(request, raw)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _answer(self, request: BaseHTTPRequestHandler, raw: bytes) -> None:
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            for secret in self.secrets:
                Webhook(secret).verify(raw, headers)
        except WebhookVerificationError as error:
            self.unverified.append(f"{headers.get('webhook-id')}: {error}")
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else (self.fail_with or 200)
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


class Hung:
    """Accepts every TCP connection and never answers: a receiver under load, a hung proxy."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/hooks"
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.max_open = 0  # connections open at once, at most
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:  # closed
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.max_open = max(self.max_open, self.open)
                self.sockets.append(conn)
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):  # read the request, answer nothing, until the sender gives up
                pass
        except OSError:
            pass
        with self.lock:
            self.open -= 1
        conn.close()

    def close(self) -> None:
        self.server.close()
        with self.lock:
            for conn in self.sockets:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def refusing_url() -> str:
    """A loopback port where nothing listens: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"
