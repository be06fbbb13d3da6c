"""A plain ``traceparent`` is read without the propagator machinery: the caller's span context
must be exactly the one OTel's W3C propagator extracts, and anything else goes to the
propagator."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from infersight.integrations._propagation import PROPAGATION, w3c_parent
from infersight.integrations.asgi import InferSightMiddleware as AsgiMiddleware
from infersight.integrations.wsgi import InferSightMiddleware as WsgiMiddleware

W3C = TraceContextTextMapPropagator()
HEX = "0123456789abcdef"


def _theirs(header: str) -> trace.SpanContext:
    return trace.get_current_span(W3C.extract({"traceparent": header})).get_span_context()


canonical = st.builds(
    lambda t, s, f: f"00-{t}-{s}-{f}",
    st.text(HEX, min_size=32, max_size=32),
    st.text(HEX, min_size=16, max_size=16),
    st.text(HEX, min_size=2, max_size=2),
)
odd = st.one_of(
    canonical.map(lambda h: " " + h),
    canonical.map(lambda h: h + "-x"),
    canonical.map(lambda h: h.upper()),
    canonical.map(lambda h: "01" + h[2:] + "-more"),
    canonical.map(lambda h: "ff" + h[2:]),
    st.text(max_size=60),
)


@given(st.one_of(canonical, odd, st.just("00-" + "0" * 32 + "-b7ad6b7169203331-01")))
def test_read_as_the_w3c_propagator_reads_it_or_left_to_it(header):
    ours = w3c_parent(header)
    theirs = _theirs(header)
    if ours is None:
        return  # the propagator decides (it may accept what we leave to it)
    assert theirs.is_valid
    assert (ours.trace_id, ours.span_id, ours.is_remote, ours.trace_flags, ours.trace_state) == (
        theirs.trace_id,
        theirs.span_id,
        theirs.is_remote,
        theirs.trace_flags,
        theirs.trace_state,
    )


def test_canonical_headers_take_the_short_path_others_the_propagator():
    PROPAGATION.current()
    assert PROPAGATION.w3c  # OTel's default propagator
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    asgi = AsgiMiddleware(lambda *a: None)

    def scope(headers):
        return {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "path": "/",
            "headers": headers,
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 5),
            "http_version": "1.1",
        }

    plain = asgi._request_info(scope([(b"traceparent", tp.encode())]))
    assert plain.remote is not None and plain.carrier is None
    with_state = asgi._request_info(scope([(b"traceparent", tp.encode()), (b"tracestate", b"k=v")]))
    assert with_state.remote is None and with_state.carrier["tracestate"] == "k=v"
    padded = asgi._request_info(scope([(b"traceparent", b" " + tp.encode())]))
    assert padded.remote is None and padded.carrier is not None

    wsgi = WsgiMiddleware(lambda *a: None)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "h",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "HTTP_TRACEPARENT": tp,
    }
    assert wsgi._request_info(environ, "/").remote == plain.remote
    environ["HTTP_BAGGAGE"] = "k=v"
    info = wsgi._request_info(environ, "/")
    assert info.remote is None and info.carrier is environ
