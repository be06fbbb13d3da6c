"""What a protocol adapter reads from a request, in protocol-neutral form (:class:`RequestInfo`),
and the small parsers behind it: the method as the HTTP conventions report it, ``server.address``
and ``server.port`` from the Host header, JSON media types. The parsed values a server sees over
and over (Host headers, connection attributes) are remembered in small bounded caches, since
the client chooses them.

Example:
    >>> server_address_port(b"api.local:8080", 80), normalize_method("BREW")
    (('api.local', 8080), '_OTHER')
"""

from __future__ import annotations

from typing import Any

from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanContext

__all__ = [
    "KNOWN_METHODS",
    "RequestInfo",
    "normalize_method",
    "split_host",
    "server_address_port",
    "connection_attributes",
    "is_json",
]

# Methods the conventions know; anything else is reported as "_OTHER" so a client cannot blow
# up span names and metric cardinality with made-up verbs.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
CACHE_LIMIT = 256  # entries per small per-process cache below; past it, compute without caching


class RequestInfo:
    """What the protocol adapter read from the request, in protocol-neutral form.

    A plain slotted class built positionally: one is made per request, and a dataclass with
    keyword arguments costs a microsecond more. ``carrier`` is ``None`` when the request carries
    none of the propagator's headers (see :class:`Propagation`): extraction is then skipped; it
    is also ``None`` when ``remote`` holds the caller's span read from a plain ``traceparent``."""

    __slots__ = (
        "method",
        "scheme",
        "path",
        "server_address",
        "server_port",
        "client",
        "user_agent",
        "protocol_version",
        "incoming_id",
        "carrier",
        "getter",
        "remote",
    )

    def __init__(
        self,
        method: str,
        scheme: str,
        path: str,
        server_address: str | None,
        server_port: int | None,
        client: str | None,
        user_agent: str | None,
        protocol_version: str | None,
        incoming_id: str | None,
        carrier: Any = None,
        getter: Getter[Any] | None = None,
        remote: SpanContext | None = None,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.path = path
        self.server_address = server_address
        self.server_port = server_port
        self.client = client
        self.user_agent = user_agent
        self.protocol_version = protocol_version
        self.incoming_id = incoming_id
        self.carrier = carrier
        self.getter = getter
        self.remote = remote  # the caller's span, already read by w3c_parent (carrier is then None)


def normalize_method(method: str) -> str:
    """The method as the conventions want it on spans and metrics: known verbs, else ``_OTHER``.

    >>> normalize_method("GET"), normalize_method("BREW")
    ('GET', '_OTHER')
    """
    return method if method in KNOWN_METHODS else "_OTHER"


def split_host(host: str | None, default_port: int | None) -> tuple[str | None, int | None]:
    """``server.address`` / ``server.port`` from a Host header (IPv6 literals included).

    >>> split_host("api.local:8080", None), split_host("[::1]:9", None), split_host("x", 443)
    (('api.local', 8080), ('::1', 9), ('x', 443))
    """
    if not host:
        return None, default_port
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            rest = host[end + 1 :]
            port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
            return host[1:end], port
    name, sep, port_text = host.rpartition(":")
    if sep and port_text.isdigit() and name:
        return name, int(port_text)
    return host, default_port


_hosts: dict[Any, tuple[str | None, int | None]] = {}


def server_address_port(host: Any, default_port: int | None) -> tuple[str | None, int | None]:
    """:func:`split_host` remembered per (Host header, default port): a server sees a handful of
    Host values, and parsing one each request is measurable. ``host`` may be ASGI ``bytes``.
    Bounded, since the header is the client's to choose.

    >>> server_address_port(b"api.local:8080", 80)
    ('api.local', 8080)
    """
    key = (host, default_port)
    hit = _hosts.get(key)
    if hit is None:
        text = host.decode("latin-1") if isinstance(host, bytes) else host
        hit = split_host(text, default_port)
        if len(_hosts) < CACHE_LIMIT:
            _hosts[key] = hit
    return hit


_connection_attrs: dict[tuple[Any, ...], dict[str, Any]] = {}


def connection_attributes(req: RequestInfo) -> dict[str, Any]:
    """The server span's attributes that come from the connection, not the request line:
    scheme, server address and port, client address, user agent, protocol version (those
    present). One shared dict per combination (a server sees few; bounded): never mutate it."""
    key = (req.scheme, req.server_address, req.server_port, req.client, req.user_agent, req.protocol_version)
    attrs = _connection_attrs.get(key)
    if attrs is None:
        attrs = {"url.scheme": req.scheme}
        if req.server_address:
            attrs["server.address"] = req.server_address
        if req.server_port:
            attrs["server.port"] = req.server_port
        if req.client:
            attrs["client.address"] = req.client
        if req.user_agent:
            attrs["user_agent.original"] = req.user_agent
        if req.protocol_version:
            attrs["network.protocol.version"] = req.protocol_version
        if len(_connection_attrs) < CACHE_LIMIT:
            _connection_attrs[key] = attrs
    return attrs


def is_json(content_type: str | None) -> bool:
    """``application/json`` and ``+json`` media types (parameters ignored).

    >>> is_json("application/json; charset=utf-8"), is_json("application/problem+json"), is_json("text/plain")
    (True, True, False)
    """
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")
