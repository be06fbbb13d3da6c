"""A model server for the stop tests, stopped with a real signal while everything it recorded is
still held in infersight's buffers (the tests set long export delays).

* ``wsgi_app``: Flask with the WSGI middleware and a ``@monitor``-ed predict, for
  ``python stop_server.py werkzeug PORT`` (``werkzeug.serving.run_simple``), ``flask run``,
  ``python -m waitress`` and gunicorn (sync and gthread workers);
* ``asgi_app``: a plain ASGI app with ``@monitor`` only (no middleware, so no lifespan flush),
  for uvicorn.

``STOP_APP_HANDLER`` makes the app install a SIGTERM handler of its own *before* configuring
infersight: ``exit3`` leaves at once with exit code 3 (``os._exit``), ``keep`` notes the signal and keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from flask import Flask, request

import infersight
from infersight.integrations.flask import instrument_app

HANDLER = os.environ.get("STOP_APP_HANDLER", "")
signals_seen: list[int] = []


def _exit3(signum: int, frame: Any) -> None:
    print(f"app handler ran for signal {signum}", flush=True)
    os._exit(3)  # no atexit, no unwinding: only a flush before this handler gets anything out


def _keep(signum: int, frame: Any) -> None:
    signals_seen.append(signum)


if HANDLER:
    signal.signal(signal.SIGTERM, {"exit3": _exit3, "keep": _keep}[HANDLER])

infersight.configure(service_name="it-stop")


@infersight.monitor(model="stop", version="1")
def predict(row: dict) -> float:
    return 0.01 * float(row["tenure"]) + 0.001 * float(row["charges"])


wsgi_app = Flask("it-stop")


@wsgi_app.get("/healthz")
def healthz() -> dict:
    return {"ok": True, "signals_seen": signals_seen, "predictions_closed": closed[0], "pid": os.getpid()}


@wsgi_app.post("/predict")
def predict_route() -> dict:
    return {"score": predict(request.get_json())}


instrument_app(wsgi_app)

# Finished /predict responses, counted outside the middleware: a server closes a response
# (where its server span ends) after the client has it, and werkzeug, which closes every
# connection, does so only once it has drained the socket, while the client may already be
# on its next request. The tests wait for this count before they stop the server.
closed = [0]


class _CountClosed:
    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        body = self.app(environ, start_response)
        return _Closing(body) if environ.get("PATH_INFO") == "/predict" else body


class _Closing:
    def __init__(self, body: Any) -> None:
        self.body = body

    def __iter__(self) -> Any:
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            closed[0] += 1


wsgi_app.wsgi_app = _CountClosed(wsgi_app.wsgi_app)  # type: ignore[method-assign]


async def asgi_app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    out = {"ok": True} if scope["path"] == "/healthz" else {"score": predict(json.loads(body))}
    data = json.dumps(out).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    server, port = sys.argv[1], int(sys.argv[2])
    if server == "werkzeug":
        from werkzeug.serving import run_simple

        run_simple("127.0.0.1", port, wsgi_app, threaded=True)
    elif server == "waitress":
        import waitress

        waitress.serve(wsgi_app, host="127.0.0.1", port=port)
