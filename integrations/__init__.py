"""Framework adapters: ``infersight.integrations.asgi`` / ``.fastapi`` and ``.wsgi`` / ``.flask``.

Two layers. A *protocol adapter* speaks one server interface and translates it into the calls
of one :class:`~infersight.integrations._exchange.Exchange` per request; a *framework adapter*
is a thin module on top of a protocol adapter that tells it what only the framework knows.

Protocol adapters (one per server interface):

* ``asgi.py``: pure ASGI middleware (Starlette's manner: wraps ``receive`` and ``send``);
* ``wsgi.py``: WSGI middleware (wraps ``start_response`` and the response iterable).

Framework adapters (one per framework; ``fastapi.py`` and ``flask.py`` are the examples to copy):

* subclass the protocol adapter's ``InferSightMiddleware`` and set ``framework = "<name>"``
  (it picks ``OTEL_PYTHON_<NAME>_EXCLUDED_URLS``);
* report the route *template*, never the raw path: on ASGI a ``route_getter(scope, root_path)``
  (the default reads Starlette's ``scope["route"]``); on WSGI a ``route_of(environ)`` static
  method, or the template left in ``environ[wsgi.ROUTE_KEY]``;
* report an exception the framework turned into a 500 itself, which the middleware cannot
  see: on WSGI in ``environ[wsgi.EXCEPTION_KEY]`` (see ``flask.py``'s signal hook);
* offer ``instrument_app(app, **options) -> app``: idempotent, validating the options at once,
  and raising ``TypeError`` that names the expected app type and the plain-middleware fallback.

A framework on ASGI or WSGI needs nothing more. A new server interface (say a gRPC server)
needs a protocol adapter: read the request into a ``RequestInfo``, then ``Exchange.begin``,
``enter``/``exit`` around the app, set ``status``/``exc``/``route``, ``tee_request``/
``tee_response`` when ``options.capture_bodies``, ``responded()`` at the last byte and
``finish()``; every step guarded so that a telemetry fault is counted with ``fault(...)`` and
never reaches the request.

What the protocol adapters share, one concept per module:

* ``_options.py``: the middleware options (request-ID header, excluded URLs, body capture);
* ``_request.py``: ``RequestInfo`` and the parsers behind it (method, Host, media type), cached;
* ``_propagation.py``: the global propagator's headers, the plain ``traceparent`` fast path, the
  context that records nothing for excluded paths;
* ``_exchange.py``: ``Exchange``, the server span and request ID of one request, and ``fault``;
* ``_duration.py``: the ``http.server.request.duration`` histogram and its attributes;
* ``_body_log.py``: opt-in body capture and its ``ml.http.exchange`` log event.
"""
