"""A webhook endpoint on loopback for the alert tests (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """A webhook endpoint on 127.0.0.1. ``gate`` (when not set) holds each request after its
    body is read, so a test decides when the sender's attempt ends; ``mode`` then answers
    ``ok`` (200), ``close`` (drops the connection unanswered) or an HTTP status code."""

    def __init__(self, mode: str | int = "ok", gated: bool = False) -> None:
        self.mode = mode
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.arrived = threading.Condition()
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recv.arrived:
                    recv.attempts += 1
                    recv.arrived.notify_all()
                recv.gate.wait()
                if recv.mode == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if recv.mode == "ok":
                    with recv.arrived:
                        recv.bodies.append(json.loads(body))
                        recv.arrived.notify_all()
                    self.send_response(200)
                else:
                    self.send_response(int(recv.mode))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, what: str, n: int, timeout: float = 20.0) -> None:
        with self.arrived:
            ok = self.arrived.wait_for(
                lambda: len(self.bodies) >= n if what == "bodies" else self.attempts >= n, timeout
            )
        assert ok, f"webhook receiver: expected {n} {what}, got {len(self.bodies)} bodies, {self.attempts} attempts"

    def stop(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
