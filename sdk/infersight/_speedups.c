/*
 * infersight._speedups: the OTLP span encoder of infersight._otlp_encode, in C; beside it, the
 * request path's converters (row_dict, row_of_items, records_matrix, columns_matrix; the code in
 * infersight.payload and infersight.feature_stats next to each call is their reference) and the
 * sketch of feature columns (sketch_rows; infersight.stats.sketch is its reference), the sum of
 * squared deviations of a sorted column (squared_deviations; infersight.stats.reference) and the
 * distances between sets of CDF knots (knot_distances; infersight.stats.cdf.distances_batch), and
 * the one-sided Kolmogorov-Smirnov tail (smirnov_sf; scipy.special.smirnov is its reference).
 *
 * encode_spans(spans, fallback) -> bytes
 *
 * For each span, the ScopeSpans.spans field: tag 0x12, varint length, then the Span message
 * body exactly as infersight._otlp_encode.encode_span(span) writes it. The common case (an
 * infersight LiteSpan without events, links or trace state, whose attribute values are str,
 * bool, int in signed 64-bit or float) is written here; any other span is handed to
 * fallback(span), the Python encoder, whose bytes are wrapped the same way. The Python
 * encoder is the reference: whatever it would raise for a span, it raises from here too. An
 * attribute it cannot write (an int outside signed 64 bits, an unknown type) is left out there,
 * logged once and counted, as the OTel exporter leaves it out; so is a span here handed to it.
 *
 * The GIL is held throughout. Python code runs only where the reference runs it as well
 * (a TraceState's length, a non-standard context's properties) and in the fallback; the
 * span list is indexed afresh after each of those, and each span is held while it is read.
 *
 * Wire format notes (protobuf): a field is a tag byte (field number << 3 | wire type) and a
 * value; varints are 7 bits per byte, low group first, high bit set on all bytes but the
 * last; fixed64/fixed32 are little-endian; length-delimited fields carry a varint length.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* What encoding one span in C came to. */
#define ENC_OK 0
#define ENC_FALLBACK 1 /* not handled here (an exception may be set: it is looked at, then cleared) */
#define ENC_ERROR -1   /* a real error (out of memory, an interrupt): raised to the caller */

#define FLAGS_HAS_IS_REMOTE 0x100u
#define FLAGS_IS_REMOTE 0x200u

/* Attribute names, interned once. */
static PyObject *s_name, *s_context, *s_parent, *s_kind, *s_start_time, *s_end_time, *s_attributes,
    *s_dropped_attributes, *s_events, *s_dropped_events, *s_links, *s_status_code, *s_status_message,
    *s_trace_id, *s_span_id, *s_is_remote, *s_trace_state, *s_value, *s_items, *s_item;

/* OTel's SpanContext (a tuple: trace_id, span_id, is_remote, trace_flags, trace_state, ...) and
 * SpanKind, found in sys.modules once OTel is imported (never imported from here). */
static PyTypeObject *span_context_type;
static PyTypeObject *span_kind_type;

/* SpanKind members seen so far and their encoded byte (value + 1). Enum members are
 * singletons with fixed values; the entries are strong references. */
#define KIND_SLOTS 8
static PyObject *kind_members[KIND_SLOTS];
static unsigned char kind_bytes[KIND_SLOTS];
static int kind_count;

/* -- growable output buffer ------------------------------------------------------------------- */

typedef struct {
    unsigned char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_grow(Buf *b, Py_ssize_t extra)
{
    if (extra > PY_SSIZE_T_MAX - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t need = b->len + extra;
    Py_ssize_t cap = b->cap > 0 ? b->cap : 256;
    while (cap < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    unsigned char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Room for `extra` more bytes; the pointer to write them at, or NULL (MemoryError set). */
static inline unsigned char *
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->cap - b->len < extra && buf_grow(b, extra) < 0)
        return NULL;
    return b->data + b->len;
}

/* -- wire primitives -------------------------------------------------------------------------- */

static inline Py_ssize_t
varint_len(uint64_t v)
{
    Py_ssize_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline unsigned char *
put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static inline unsigned char *
put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static inline unsigned char *
put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

/* -- reading Python values -------------------------------------------------------------------- */

/* The UTF-8 bytes of an exact str: its own storage when it is ASCII, else a new bytes object
 * held in *tmp (so no UTF-8 copy is left cached on the string). -1 with an exception set when
 * it cannot be encoded (lone surrogates). */
static int
utf8_of(PyObject *s, const char **data, Py_ssize_t *size, PyObject **tmp)
{
    *tmp = NULL;
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0)
        return -1;
#endif
    if (PyUnicode_IS_ASCII(s)) {
        *data = (const char *)PyUnicode_DATA(s);
        *size = PyUnicode_GET_LENGTH(s);
        return 0;
    }
    PyObject *b = PyUnicode_AsUTF8String(s);
    if (b == NULL)
        return -1;
    *tmp = b;
    *data = PyBytes_AS_STRING(b);
    *size = PyBytes_GET_SIZE(b);
    return 0;
}

/* An exact int in [0, 2**64) (what struct's "Q" and int.to_bytes(8) take), else -1. */
static int
get_u64(PyObject *v, uint64_t *out)
{
    if (!PyLong_CheckExact(v))
        return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *out = (uint64_t)x;
    return 0;
}

/* An exact int in [0, 2**128) as 16 big-endian bytes, else -1. */
static int
get_u128_be(PyObject *v, unsigned char out[16])
{
    if (!PyLong_CheckExact(v))
        return -1;
#if PY_VERSION_HEX >= 0x030D0000
    Py_ssize_t n = PyLong_AsNativeBytes(v, out, 16,
                                        Py_ASNATIVEBYTES_BIG_ENDIAN | Py_ASNATIVEBYTES_UNSIGNED_BUFFER |
                                            Py_ASNATIVEBYTES_REJECT_NEGATIVE);
    if (n < 0 || n > 16)
        return -1;
    return 0;
#else
    return _PyLong_AsByteArray((PyLongObject *)v, out, 16, 0 /* big-endian */, 0 /* unsigned */);
#endif
}

/* A count field (dropped attributes/events): 0 (or None) writes nothing; a positive exact int
 * is written as tag + varint. Anything else is the reference's business. */
static int
put_count(Buf *b, unsigned char tag, PyObject *v)
{
    if (v == Py_None)
        return ENC_OK;
    if (!PyLong_CheckExact(v))
        return ENC_FALLBACK;
    int overflow = 0;
    long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || n < 0 || (n == -1 && PyErr_Occurred()))
        return ENC_FALLBACK;
    if (n == 0)
        return ENC_OK;
    unsigned char *p = buf_reserve(b, 11);
    if (p == NULL)
        return ENC_ERROR;
    *p++ = tag;
    p = put_varint(p, (uint64_t)n);
    b->len = p - b->data;
    return ENC_OK;
}

/* One span attribute as a complete Span.attributes field (tag 0x4a): a KeyValue with the key
 * and an AnyValue of one of the four scalar types (bool before int, as the reference). */
static int
put_attribute(Buf *b, PyObject *key, PyObject *value)
{
    const char *kdata, *vdata = NULL;
    Py_ssize_t klen, vlen = 0, avlen;
    PyObject *ktmp = NULL, *vtmp = NULL;
    uint64_t ival = 0;
    int ret = ENC_FALLBACK;

    if (!PyUnicode_CheckExact(key))
        return ENC_FALLBACK;
    PyTypeObject *t = Py_TYPE(value);
    if (t == &PyUnicode_Type) {
        if (utf8_of(value, &vdata, &vlen, &vtmp) < 0)
            return ENC_FALLBACK;
        avlen = 1 + varint_len((uint64_t)vlen) + vlen;
    }
    else if (t == &PyBool_Type) {
        avlen = 2;
    }
    else if (t == &PyLong_Type) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (x == -1 && PyErr_Occurred()))
            return ENC_FALLBACK;
        ival = (uint64_t)x; /* negative: two's complement, as value + 2**64 */
        avlen = 1 + varint_len(ival);
    }
    else if (t == &PyFloat_Type) {
        avlen = 9;
    }
    else {
        return ENC_FALLBACK;
    }
    if (utf8_of(key, &kdata, &klen, &ktmp) < 0)
        goto done;

    Py_ssize_t kvlen = 1 + varint_len((uint64_t)klen) + klen + 1 + varint_len((uint64_t)avlen) + avlen;
    unsigned char *p = buf_reserve(b, 1 + varint_len((uint64_t)kvlen) + kvlen);
    if (p == NULL) {
        ret = ENC_ERROR;
        goto done;
    }
    *p++ = 0x4a;
    p = put_varint(p, (uint64_t)kvlen);
    *p++ = 0x0a;
    p = put_varint(p, (uint64_t)klen);
    memcpy(p, kdata, (size_t)klen);
    p += klen;
    *p++ = 0x12;
    p = put_varint(p, (uint64_t)avlen);
    if (t == &PyUnicode_Type) {
        *p++ = 0x0a;
        p = put_varint(p, (uint64_t)vlen);
        memcpy(p, vdata, (size_t)vlen);
        p += vlen;
    }
    else if (t == &PyBool_Type) {
        *p++ = 0x10;
        *p++ = value == Py_True ? 1 : 0;
    }
    else if (t == &PyLong_Type) {
        *p++ = 0x18;
        p = put_varint(p, ival);
    }
    else {
        /* The bits as stored (struct's "<d" copies them too: NaN payloads and -0.0 kept). */
        uint64_t bits;
        memcpy(&bits, &((PyFloatObject *)value)->ob_fval, 8);
        *p++ = 0x21;
        p = put_le64(p, bits);
    }
    b->len = p - b->data;
    ret = ENC_OK;
done:
    Py_XDECREF(ktmp);
    Py_XDECREF(vtmp);
    return ret;
}

/* The attributes of a span, in the order the reference's attributes.items() gives them. */
static int
put_attributes(Buf *b, PyObject *attrs)
{
    if (attrs == Py_None)
        return ENC_OK;
    if (PyDict_CheckExact(attrs)) {
        /* No Python code runs in this loop (exact str/int/float/bool only), so the borrowed
         * references stay valid and the dict cannot change under it. */
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(attrs, &pos, &k, &v)) {
            int r = put_attribute(b, k, v);
            if (r != ENC_OK)
                return r;
        }
        return ENC_OK;
    }
    /* Any other mapping (a dict subclass such as the span-limits one): its own items(). */
    int truth = PyObject_IsTrue(attrs);
    if (truth <= 0)
        return truth < 0 ? ENC_FALLBACK : ENC_OK;
    PyObject *items = PyObject_CallMethodNoArgs(attrs, s_items);
    if (items == NULL)
        return ENC_FALLBACK;
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    if (it == NULL)
        return ENC_FALLBACK;
    int ret = ENC_OK;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2)
            ret = put_attribute(b, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
        else
            ret = ENC_FALLBACK;
        Py_DECREF(item);
        if (ret != ENC_OK)
            break;
    }
    Py_DECREF(it);
    if (ret == ENC_OK && PyErr_Occurred())
        ret = ENC_FALLBACK;
    return ret;
}

/* events / links: only None or an empty list is written here (nothing to write). */
static int
is_empty(PyObject *v)
{
    return v == Py_None || (PyList_CheckExact(v) && PyList_GET_SIZE(v) == 0);
}

/* The byte the reference writes for span.kind: kind.value + 1, for values 0..126. */
static int
kind_byte(PyObject *kind, unsigned char *out)
{
    int known = span_kind_type != NULL && Py_TYPE(kind) == span_kind_type;
    if (known) {
        for (int i = 0; i < kind_count; i++) {
            if (kind_members[i] == kind) {
                *out = kind_bytes[i];
                return ENC_OK;
            }
        }
    }
    PyObject *v = PyObject_GetAttr(kind, s_value);
    if (v == NULL)
        return ENC_FALLBACK;
    long x = -1;
    if (PyLong_CheckExact(v))
        x = PyLong_AsLong(v);
    Py_DECREF(v);
    if (x < 0 || x > 126)
        return ENC_FALLBACK;
    *out = (unsigned char)(x + 1);
    if (known && kind_count < KIND_SLOTS) {
        Py_INCREF(kind);
        kind_members[kind_count] = kind;
        kind_bytes[kind_count] = *out;
        kind_count++;
    }
    return ENC_OK;
}

/* The fields of a span context the encoder reads, as new references: straight from the tuple
 * for OTel's own SpanContext (its properties are self[i]), by attribute otherwise. */
typedef struct {
    PyObject *trace_id, *span_id, *is_remote, *trace_state;
} Ctx;

static void
ctx_clear(Ctx *c)
{
    Py_CLEAR(c->trace_id);
    Py_CLEAR(c->span_id);
    Py_CLEAR(c->is_remote);
    Py_CLEAR(c->trace_state);
}

static int
ctx_read(PyObject *ctx, Ctx *c, int full)
{
    if (span_context_type != NULL && Py_TYPE(ctx) == span_context_type && PyTuple_GET_SIZE(ctx) >= 5) {
        c->trace_id = PyTuple_GET_ITEM(ctx, 0);
        c->span_id = PyTuple_GET_ITEM(ctx, 1);
        c->is_remote = PyTuple_GET_ITEM(ctx, 2);
        c->trace_state = PyTuple_GET_ITEM(ctx, 4);
        Py_INCREF(c->trace_id);
        Py_INCREF(c->span_id);
        Py_INCREF(c->is_remote);
        Py_INCREF(c->trace_state);
        return 0;
    }
    /* The properties the reference reads: a span's own context for its IDs and trace state,
     * a parent's for its span ID and remoteness. */
    if (full && (c->trace_id = PyObject_GetAttr(ctx, s_trace_id)) == NULL)
        return -1;
    if ((c->span_id = PyObject_GetAttr(ctx, s_span_id)) == NULL)
        return -1;
    if (full)
        return (c->trace_state = PyObject_GetAttr(ctx, s_trace_state)) == NULL ? -1 : 0;
    return (c->is_remote = PyObject_GetAttr(ctx, s_is_remote)) == NULL ? -1 : 0;
}

/* The span's Span message body, preceded by tag 0x12 and its length; ENC_FALLBACK leaves the
 * buffer as it was. */
static int
put_span(Buf *b, PyObject *span)
{
    const Py_ssize_t mark = b->len;
    PyObject *context = NULL, *parent = NULL, *name = NULL, *kind = NULL, *start = NULL, *end = NULL,
             *attrs = NULL, *dropped_attrs = NULL, *events = NULL, *dropped_events = NULL, *links = NULL,
             *code = NULL, *message = NULL, *name_tmp = NULL, *msg_tmp = NULL;
    Ctx ctx = {NULL, NULL, NULL, NULL}, pctx = {NULL, NULL, NULL, NULL};
    unsigned char trace_id[16], kb;
    uint64_t span_id, parent_id = 0, t0, t1;
    const char *name_data, *msg_data = NULL;
    Py_ssize_t name_len, msg_len = 0;
    long status = 0;
    int parent_remote = 0, ret = ENC_FALLBACK, r;
    unsigned char *p;

#define GET(var, attr)                                        \
    if (((var) = PyObject_GetAttr(span, (attr))) == NULL) \
        goto done;

    GET(context, s_context);
    if (ctx_read(context, &ctx, 1) < 0)
        goto done;
    if (get_u128_be(ctx.trace_id, trace_id) < 0 || get_u64(ctx.span_id, &span_id) < 0)
        goto done;
    if (ctx.trace_state != Py_None) {
        int non_empty = PyObject_IsTrue(ctx.trace_state);
        if (non_empty != 0)
            goto done; /* written by the reference (or its error raised there) */
    }
    GET(parent, s_parent);
    if (parent != Py_None) {
        if (ctx_read(parent, &pctx, 0) < 0 || get_u64(pctx.span_id, &parent_id) < 0)
            goto done;
        if ((parent_remote = PyObject_IsTrue(pctx.is_remote)) < 0)
            goto done;
    }
    GET(name, s_name);
    if (!PyUnicode_CheckExact(name) || utf8_of(name, &name_data, &name_len, &name_tmp) < 0)
        goto done;
    GET(kind, s_kind);
    if ((r = kind_byte(kind, &kb)) != ENC_OK) {
        ret = r;
        goto done;
    }
    GET(start, s_start_time);
    GET(end, s_end_time);
    if (get_u64(start, &t0) < 0 || get_u64(end, &t1) < 0)
        goto done;
    GET(events, s_events);
    GET(links, s_links);
    if (!is_empty(events) || !is_empty(links))
        goto done;
    GET(code, s_status_code);
    GET(message, s_status_message);
    if (!PyLong_CheckExact(code))
        goto done;
    status = PyLong_AsLong(code);
    if (status < 0 || status > 127) /* the reference indexes a 128-entry table */
        goto done;
    if (message != Py_None) {
        if (!PyUnicode_CheckExact(message) || utf8_of(message, &msg_data, &msg_len, &msg_tmp) < 0)
            goto done;
    }
    GET(attrs, s_attributes);
    GET(dropped_attrs, s_dropped_attributes);
    GET(dropped_events, s_dropped_events);
#undef GET

    /* Tag and a two-byte length placeholder (right for bodies of 128..16383 bytes); moved
     * once the body's length is known when it needs another size. */
    /* tag + length, trace ID, span ID, parent, name (tag, length, bytes), kind, times */
    const Py_ssize_t fixed = 3 + 18 + 10 + 10 + 1 + 10 + name_len + 2 + 18;
    if ((p = buf_reserve(b, fixed)) == NULL)
        goto error;
    *p++ = 0x12;
    p += 2;
    const Py_ssize_t body = p - b->data;
    *p++ = 0x0a;
    *p++ = 0x10;
    memcpy(p, trace_id, 16);
    p += 16;
    *p++ = 0x12;
    *p++ = 0x08;
    p = put_be64(p, span_id);
    if (parent != Py_None) {
        *p++ = 0x22;
        *p++ = 0x08;
        p = put_be64(p, parent_id);
    }
    *p++ = 0x2a;
    p = put_varint(p, (uint64_t)name_len);
    memcpy(p, name_data, (size_t)name_len);
    p += name_len;
    *p++ = 0x30;
    *p++ = kb;
    *p++ = 0x39;
    p = put_le64(p, t0);
    *p++ = 0x41;
    p = put_le64(p, t1);
    b->len = p - b->data;

    if ((r = put_attributes(b, attrs)) != ENC_OK || (r = put_count(b, 0x50, dropped_attrs)) != ENC_OK ||
        (r = put_count(b, 0x60, dropped_events)) != ENC_OK) {
        ret = r;
        goto done;
    }

    /* Status, always present (empty when unset), then flags (fixed32). */
    Py_ssize_t slen = (msg_len ? 1 + varint_len((uint64_t)msg_len) + msg_len : 0) + (status ? 2 : 0);
    if ((p = buf_reserve(b, 1 + 10 + slen + 6)) == NULL)
        goto error;
    *p++ = 0x7a;
    p = put_varint(p, (uint64_t)slen);
    if (msg_len) {
        *p++ = 0x12;
        p = put_varint(p, (uint64_t)msg_len);
        memcpy(p, msg_data, (size_t)msg_len);
        p += msg_len;
    }
    if (status) {
        *p++ = 0x18;
        *p++ = (unsigned char)status;
    }
    uint32_t flags = FLAGS_HAS_IS_REMOTE | (parent_remote > 0 ? FLAGS_IS_REMOTE : 0);
    *p++ = 0x85;
    *p++ = 0x01;
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(flags >> (8 * i));
    b->len = p - b->data;

    /* The length prefix. */
    Py_ssize_t body_len = b->len - body;
    Py_ssize_t vlen = varint_len((uint64_t)body_len);
    if (vlen != 2) {
        if (vlen > 2 && buf_reserve(b, vlen - 2) == NULL)
            goto error;
        memmove(b->data + body + (vlen - 2), b->data + body, (size_t)body_len);
        b->len += vlen - 2;
    }
    put_varint(b->data + mark + 1, (uint64_t)body_len);
    ret = ENC_OK;
    goto done;

error:
    ret = ENC_ERROR;
done:
    if (ret != ENC_OK)
        b->len = mark;
    ctx_clear(&ctx);
    ctx_clear(&pctx);
    Py_XDECREF(context);
    Py_XDECREF(parent);
    Py_XDECREF(name);
    Py_XDECREF(kind);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(attrs);
    Py_XDECREF(dropped_attrs);
    Py_XDECREF(events);
    Py_XDECREF(dropped_events);
    Py_XDECREF(links);
    Py_XDECREF(code);
    Py_XDECREF(message);
    Py_XDECREF(name_tmp);
    Py_XDECREF(msg_tmp);
    return ret;
}

/* A span through the Python encoder: its bytes, wrapped as the spans field. */
static int
put_fallback(Buf *b, PyObject *span, PyObject *fallback)
{
    PyObject *encoded = PyObject_CallOneArg(fallback, span);
    if (encoded == NULL)
        return -1;
    if (!PyBytes_Check(encoded)) {
        PyErr_Format(PyExc_TypeError, "fallback returned %.100s, not bytes", Py_TYPE(encoded)->tp_name);
        Py_DECREF(encoded);
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(encoded);
    unsigned char *p = buf_reserve(b, 1 + 10 + n);
    if (p == NULL) {
        Py_DECREF(encoded);
        return -1;
    }
    *p++ = 0x12;
    p = put_varint(p, (uint64_t)n);
    memcpy(p, PyBytes_AS_STRING(encoded), (size_t)n);
    b->len = (p - b->data) + n;
    Py_DECREF(encoded);
    return 0;
}

/* OTel's SpanContext and SpanKind types, once their modules are imported. */
static void
find_types(void)
{
    static const struct {
        const char *module, *name;
        PyTypeObject **slot;
    } wanted[] = {
        {"opentelemetry.trace.span", "SpanContext", &span_context_type},
        {"opentelemetry.trace", "SpanKind", &span_kind_type},
    };
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        if (*wanted[i].slot != NULL)
            continue;
        PyObject *name = PyUnicode_FromString(wanted[i].module);
        if (name == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *mod = PyImport_GetModule(name);
        Py_DECREF(name);
        if (mod == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *type = PyObject_GetAttrString(mod, wanted[i].name);
        Py_DECREF(mod);
        if (type == NULL) {
            PyErr_Clear();
            continue;
        }
        if (PyType_Check(type))
            *wanted[i].slot = (PyTypeObject *)type; /* kept for the life of the process */
        else
            Py_DECREF(type);
    }
}

PyDoc_STRVAR(encode_spans_doc,
             "encode_spans(spans, fallback, /)\n--\n\n"
             "The ScopeSpans.spans fields (tag 0x12, length, Span body) of the given spans,\n"
             "concatenated: each body as infersight._otlp_encode.encode_span writes it. Spans this\n"
             "module does not handle are encoded by fallback(span), which must return bytes.");

static PyObject *
encode_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "encode_spans() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *fallback = args[1];
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "encode_spans() fallback must be callable");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "encode_spans() spans must be a sequence");
    if (seq == NULL)
        return NULL;
    if (span_context_type == NULL || span_kind_type == NULL)
        find_types();

    Buf b = {NULL, 0, 0};
    PyObject *result = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0 && buf_grow(&b, n < 1 << 15 ? n * 512 : 1 << 24) < 0) /* a server span is ~450 bytes */
        goto done;
    /* The length is read again each time: a fallback runs Python code, which may change a list. */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *span = PySequence_Fast_GET_ITEM(seq, i);
        Py_INCREF(span);
        int r = put_span(&b, span);
        if (r == ENC_FALLBACK && PyErr_Occurred()) {
            if (PyErr_ExceptionMatches(PyExc_Exception))
                PyErr_Clear(); /* the reference raises it again, or handles the span */
            else
                r = ENC_ERROR; /* KeyboardInterrupt and the like go up as they are */
        }
        if (r == ENC_FALLBACK)
            r = put_fallback(&b, span, fallback);
        Py_DECREF(span);
        if (r < 0)
            goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)b.data, b.len);
done:
    PyMem_Free(b.data);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(untrack_doc,
             "untrack(*objects)\n--\n\n"
             "Take the objects out of the cyclic garbage collector's view (as the interpreter does\n"
             "itself for tuples and dicts of atomic values). While out of it, an object in a reference\n"
             "cycle is not freed: only for objects that cannot be in one, or for a while (see track).");

static PyObject *
untrack(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *o = args[i];
        if (PyObject_IS_GC(o) && PyObject_GC_IsTracked(o))
            PyObject_GC_UnTrack(o);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(track_doc,
             "track(*objects)\n--\n\n"
             "Put objects taken out of the collector's view with untrack() back in it (objects\n"
             "already tracked, and objects that are not containers, are left as they are).");

static PyObject *
track(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *o = args[i];
        if (PyObject_IS_GC(o) && !PyObject_GC_IsTracked(o))
            PyObject_GC_Track(o);
    }
    Py_RETURN_NONE;
}

/* -- feature rows (infersight.payload and infersight.feature_stats) ---------------------------
 *
 * Conversions of predict inputs that are Python objects, one value at a time: in Python each
 * value costs a type check and a conversion of 30-80 ns, here a few. Each function does the
 * common case and answers None for anything else, so the caller takes its Python path, the
 * reference, which these functions reproduce exactly. */

PyDoc_STRVAR(row_dict_doc,
             "row_dict(names, values, /)\n--\n\n"
             "dict(zip(names, values)) for two sequences of the same length (one row's names and\n"
             "values, e.g. an array's tolist()).");

static PyObject *
row_dict(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "row_dict() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *names = PySequence_Fast(args[0], "row_dict() names must be a sequence");
    if (names == NULL)
        return NULL;
    PyObject *values = PySequence_Fast(args[1], "row_dict() values must be a sequence");
    if (values == NULL) {
        Py_DECREF(names);
        return NULL;
    }
    PyObject *out = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(names);
    if (PySequence_Fast_GET_SIZE(values) != n) {
        PyErr_Format(PyExc_ValueError, "row_dict() got %zd names and %zd values", n,
                     PySequence_Fast_GET_SIZE(values));
        goto done;
    }
    out = _PyDict_NewPresized(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyDict_SetItem(out, PySequence_Fast_GET_ITEM(names, i), PySequence_Fast_GET_ITEM(values, i)) < 0) {
            Py_CLEAR(out);
            goto done;
        }
    }
done:
    Py_DECREF(names);
    Py_DECREF(values);
    return out;
}

/* None after clearing an ordinary exception (the caller's Python path meets it again and
 * decides); NULL for the others (MemoryError, KeyboardInterrupt), which go up as they are. */
static PyObject *
none_unless_fatal(void)
{
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_Exception) || PyErr_ExceptionMatches(PyExc_MemoryError))
            return NULL;
        PyErr_Clear();
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(row_of_items_doc,
             "row_of_items(columns, array_type, /)\n--\n\n"
             "{name: value.item()} for a dict whose keys are str and whose values are all of\n"
             "array_type (numpy.ndarray) with len() 1; None for any other dict. A one-element\n"
             "1-D array of float64, int64 or bool in native byte order is read in place (what\n"
             "item() gives, without the method call); any other one calls item().");

/* The leading fields of numpy's array and dtype objects, which numpy keeps in place for the
 * compiled extensions that read them through its C API's macros (numpy 1.x and 2.x alike).
 * Read only for exact ndarray objects; infersight.payload checks at import that what is read
 * equals item() on every kind read here, and leaves row_of_items unused otherwise. */
typedef struct {
    PyObject_HEAD char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
} np_array_head;

typedef struct {
    PyObject_HEAD PyTypeObject *typeobj;
    char kind;
    char type;
    char byteorder;
    char former_flags;
    int type_num;
} np_descr_head;

#define NP_BOOL 0
#define NP_LONG 7
#define NP_LONGLONG 9
#define NP_DOUBLE 12

/* The one value of a 1-D one-element array of float64, int64 or bool in native order, as a new
 * reference; NULL without an exception for any other array (then item() decides). */
static PyObject *
one_value(PyObject *array)
{
    const np_array_head *a = (const np_array_head *)array;
    if (a->nd != 1 || a->dimensions == NULL || a->dimensions[0] != 1 || a->data == NULL || a->descr == NULL)
        return NULL;
    const np_descr_head *d = (const np_descr_head *)a->descr;
    const uint16_t probe = 1;
    int little = *(const unsigned char *)&probe == 1;
    if (!(d->byteorder == '=' || d->byteorder == '|' || (d->byteorder == '<' && little)))
        return NULL;
    if (d->type_num == NP_DOUBLE && d->kind == 'f') {
        double v;
        memcpy(&v, a->data, sizeof v);
        return PyFloat_FromDouble(v);
    }
    if (d->type_num == NP_LONGLONG && d->kind == 'i') {
        long long v;
        memcpy(&v, a->data, sizeof v);
        return PyLong_FromLongLong(v);
    }
    if (d->type_num == NP_LONG && d->kind == 'i') {
        long v;
        memcpy(&v, a->data, sizeof v);
        return PyLong_FromLong(v);
    }
    if (d->type_num == NP_BOOL && d->kind == 'b')
        return PyBool_FromLong(*(const unsigned char *)a->data != 0);
    return NULL;
}

/* The one value of a one-element array (in place, or through item()); NULL, with or without
 * an exception, for anything else. */
static PyObject *
item_of(PyObject *value)
{
    Py_INCREF(value); /* .item() runs no Python code for an ndarray, but hold it anyway */
    PyObject *item = one_value(value);
    if (item == NULL && !PyErr_Occurred()) {
        Py_ssize_t len = PyObject_Size(value);
        item = len == 1 ? PyObject_CallMethodNoArgs(value, s_item) : NULL;
    }
    Py_DECREF(value);
    return item;
}

static PyObject *
row_of_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "row_of_items() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *columns = args[0], *array_type = args[1];
    if (!PyDict_CheckExact(columns) || !PyType_Check(array_type))
        Py_RETURN_NONE;
    PyObject *out = _PyDict_NewPresized(PyDict_GET_SIZE(columns));
    if (out == NULL)
        return NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(columns, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || Py_TYPE(value) != (PyTypeObject *)array_type)
            goto other;
        PyObject *item = item_of(value);
        if (item == NULL)
            goto other;
        int r = PyDict_SetItem(out, key, item);
        Py_DECREF(item);
        if (r < 0)
            goto other;
    }
    return out;
other:
    Py_DECREF(out);
    return none_unless_fatal();
}

PyDoc_STRVAR(items_row_doc,
             "items_row(columns, array_type, /)\n--\n\n"
             "(names, values): the keys of a dict of one-element arrays as a tuple, and\n"
             "tuple(value.item() for value in columns.values()), read as row_of_items reads them;\n"
             "None for any dict row_of_items answers None for.");

static PyObject *
items_row(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "items_row() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *columns = args[0], *array_type = args[1];
    if (!PyDict_CheckExact(columns) || !PyType_Check(array_type))
        Py_RETURN_NONE;
    Py_ssize_t k = PyDict_GET_SIZE(columns);
    PyObject *names = PyTuple_New(k);
    PyObject *values = PyTuple_New(k);
    if (names == NULL || values == NULL) {
        Py_XDECREF(names);
        Py_XDECREF(values);
        return NULL;
    }
    Py_ssize_t pos = 0, j = 0;
    PyObject *key, *value;
    /* A tuple's unset items are NULL, which its deallocation skips: leaving early is safe.
     * item() of an exact ndarray runs no Python code, so the dict cannot change meanwhile;
     * j < k is checked anyway. */
    while (PyDict_Next(columns, &pos, &key, &value)) {
        if (j >= k || !PyUnicode_CheckExact(key) || Py_TYPE(value) != (PyTypeObject *)array_type)
            goto other;
        PyObject *item = item_of(value);
        if (item == NULL)
            goto other;
        Py_INCREF(key);
        PyTuple_SET_ITEM(names, j, key);
        PyTuple_SET_ITEM(values, j, item);
        j++;
    }
    if (j != k)
        goto other;
    PyObject *out = PyTuple_Pack(2, names, values);
    Py_DECREF(names);
    Py_DECREF(values);
    return out;
other:
    Py_DECREF(names);
    Py_DECREF(values);
    return none_unless_fatal();
}

/* Whether a value is one the Python path takes as a number (float or int, not bool). */
/* A big list's dicts lie far apart in memory, and each is a table of about 27 bytes a key
 * (indices, then key/value entries): records_matrix asks for a row's object PREFETCH_ROWS rows
 * ahead and for its table half as far ahead, at most PREFETCH_LINES cache lines of it (about 8%
 * off 100,000 rows of 50 features, which are read from memory, not from cache). */
#define PREFETCH_ROWS 8
#define PREFETCH_LINES 24
#define IS_NUMBER(v) (PyFloat_CheckExact(v) || PyLong_CheckExact(v))
/* Whether a value is one of the other plain kinds these functions pass on (None, bool, str). */
#define IS_PLAIN(v) ((v) == Py_None || PyBool_Check(v) || PyUnicode_CheckExact(v))

PyDoc_STRVAR(records_matrix_doc,
             "records_matrix(rows, start, out, /)\n--\n\n"
             "Rows rows[start:start + m] of a list of dicts, m = len(out) / len(rows[start]), as\n"
             "columns: out (a writable buffer of k * m float64, names x rows, feature-major as the\n"
             "sketch reads them: value j of row i at j * m + i) receives every column whose\n"
             "values are all float or int (not bool);\n"
             "the answer is (names, others): the k names (str) of rows[start] in order, and a\n"
             "list of (j, values) for each other column, values a list of its m values.\n"
             "None, with out in any state, unless every row is a dict with the same names in\n"
             "the same order, every value a float, an int that fits a float, None, a bool or a\n"
             "str (exact types), and the rows are there.");

static PyObject *
records_matrix(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "records_matrix() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *rows = args[0];
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (!PyList_CheckExact(rows) || start < 0 || start >= PyList_GET_SIZE(rows))
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    PyObject *names = NULL, *others = NULL, *result = NULL;
    unsigned char *is_other = NULL;
    PyObject *first = PyList_GET_ITEM(rows, start);
    if (!PyDict_CheckExact(first))
        goto other;
    Py_ssize_t k = PyDict_GET_SIZE(first);
    if (k == 0 || view.len % (Py_ssize_t)(k * sizeof(double)) != 0)
        goto other;
    Py_ssize_t m = view.len / (Py_ssize_t)(k * sizeof(double));
    if (m == 0 || m > PyList_GET_SIZE(rows) - start)
        goto other;
    names = PyTuple_New(k);
    is_other = PyMem_Calloc((size_t)k, 1);
    if (names == NULL || is_other == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    {
        Py_ssize_t pos = 0, j = 0;
        PyObject *key, *value;
        while (PyDict_Next(first, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key))
                goto other;
            Py_INCREF(key);
            PyTuple_SET_ITEM(names, j++, key);
        }
    }
    double *out = (double *)view.buf;
    int any_other = 0;
#if defined(__GNUC__)
    Py_ssize_t lines = Py_MIN(PREFETCH_LINES, 2 + k * 27 / 64);
#endif
    /* Only C code runs from here to the end (no __eq__ of a str subclass, no __hash__):
     * the rows cannot change while they are read. */
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *row = PyList_GET_ITEM(rows, start + i);
#if defined(__GNUC__)
        if (i + PREFETCH_ROWS < m)
            __builtin_prefetch(PyList_GET_ITEM(rows, start + i + PREFETCH_ROWS));
        if (i + PREFETCH_ROWS / 2 < m) {
            PyObject *ahead = PyList_GET_ITEM(rows, start + i + PREFETCH_ROWS / 2);
            if (PyDict_CheckExact(ahead)) {
                const char *keys = (const char *)((PyDictObject *)ahead)->ma_keys;
                for (Py_ssize_t line = 0; line < lines; line++)
                    __builtin_prefetch(keys + 64 * line);
            }
        }
#endif
        if (!PyDict_CheckExact(row) || PyDict_GET_SIZE(row) != k)
            goto other;
        Py_ssize_t pos = 0, j = 0;
        PyObject *key, *value;
        while (PyDict_Next(row, &pos, &key, &value)) {
            PyObject *name = PyTuple_GET_ITEM(names, j);
            if (key != name && (!PyUnicode_CheckExact(key) || PyUnicode_Compare(key, name) != 0))
                goto other;
            if (PyFloat_CheckExact(value)) {
                out[j * m + i] = PyFloat_AS_DOUBLE(value);
            }
            else if (PyLong_CheckExact(value)) {
                double d = PyLong_AsDouble(value);
                if (d == -1.0 && PyErr_Occurred())
                    goto other; /* too big for a float: the Python path says what happens */
                out[j * m + i] = d;
            }
            else if (IS_PLAIN(value)) {
                is_other[j] = 1;
                any_other = 1;
            }
            else
                goto other;
            j++;
        }
    }
    others = PyList_New(0);
    if (others == NULL)
        goto fail;
    if (any_other) {
        /* A column holding anything but numbers is handed over whole, its numbers included,
         * as the Python path classifies it value by value. */
        for (Py_ssize_t j = 0; j < k; j++) {
            if (!is_other[j])
                continue;
            PyObject *values = PyList_New(m);
            if (values == NULL)
                goto fail;
            PyObject *pair = Py_BuildValue("(nN)", j, values);
            if (pair == NULL || PyList_Append(others, pair) < 0) {
                Py_XDECREF(pair);
                goto fail;
            }
            Py_DECREF(pair);
        }
        for (Py_ssize_t i = 0; i < m; i++) {
            PyObject *row = PyList_GET_ITEM(rows, start + i);
            Py_ssize_t pos = 0, j = 0, c = 0;
            PyObject *key, *value;
            while (PyDict_Next(row, &pos, &key, &value)) {
                if (is_other[j]) {
                    PyObject *values = PyTuple_GET_ITEM(PyList_GET_ITEM(others, c), 1);
                    Py_INCREF(value);
                    PyList_SET_ITEM(values, i, value);
                    c++;
                }
                j++;
            }
        }
    }
    result = PyTuple_Pack(2, names, others);
    goto fail; /* the common clean-up */
other:
    PyErr_Clear(); /* only a failed PyLong_AsDouble (OverflowError) can have set one */
    result = Py_None;
    Py_INCREF(result);
fail:
    Py_XDECREF(names);
    Py_XDECREF(others);
    PyMem_Free(is_other);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(columns_matrix_doc,
             "columns_matrix(columns, array_type, out, /)\n--\n\n"
             "A dict of k equally long 1-D float64 arrays (exact str names, values of exactly\n"
             "array_type) copied into out, a writable C-ordered buffer of k * n float64, column\n"
             "j of the dict (in order) into its row j; the answer is the tuple of the k names.\n"
             "None, with out in any state, for any other dict or a length other than n.");

static PyObject *
columns_matrix(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "columns_matrix() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *columns = args[0], *array_type = args[1];
    if (!PyDict_CheckExact(columns) || !PyType_Check(array_type) || PyDict_GET_SIZE(columns) == 0)
        Py_RETURN_NONE;
    Py_buffer view;
    if (PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t k = PyDict_GET_SIZE(columns);
    Py_ssize_t n = view.len / (Py_ssize_t)(k * sizeof(double));
    PyObject *names = NULL;
    if (n == 0 || view.len != n * k * (Py_ssize_t)sizeof(double))
        goto other;
    names = PyTuple_New(k);
    if (names == NULL)
        goto fail;
    {
        double *out = (double *)view.buf;
        Py_ssize_t pos = 0, j = 0;
        PyObject *key, *value;
        /* Only C code runs while the dict is read (an ndarray's buffer export runs none). */
        while (PyDict_Next(columns, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key) || Py_TYPE(value) != (PyTypeObject *)array_type)
                goto other;
            Py_buffer col;
            if (PyObject_GetBuffer(value, &col, PyBUF_STRIDES | PyBUF_FORMAT) < 0)
                goto other;
            int fits = col.ndim == 1 && col.shape[0] == n && col.itemsize == (Py_ssize_t)sizeof(double) &&
                       col.format != NULL && strcmp(col.format, "d") == 0;
            if (fits) {
                const char *at = (const char *)col.buf;
                double *row = out + j * n;
                if (col.strides[0] == (Py_ssize_t)sizeof(double))
                    memcpy(row, at, (size_t)n * sizeof(double));
                else
                    for (Py_ssize_t i = 0; i < n; i++)
                        memcpy(row + i, at + i * col.strides[0], sizeof(double));
            }
            PyBuffer_Release(&col);
            if (!fits)
                goto other;
            Py_INCREF(key);
            PyTuple_SET_ITEM(names, j++, key);
        }
    }
    PyBuffer_Release(&view);
    return names;
other:
    PyErr_Clear(); /* a column that exports no buffer is the Python path's to judge */
    Py_XDECREF(names);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&view);
    return NULL;
}

/* ---- exponential-histogram sketches (infersight.stats.sketch is the reference) ------------ */

#define SK_MANTISSA 0x000FFFFFFFFFFFFFull
#define SK_MIN_NORMAL 2.2250738585072014e-308 /* smallest positive normal double, 2**-1022 */
#define SK_MIN_SCALE (-10)
#define SK_NONE INT32_MIN /* no index: zero or not finite */
#define SK_FINITE(v) (isfinite(v) ? (v) : 0.0)

/* Index of a positive finite value x at scale 1..20 as the OTel SDK's LogarithmMapping gives
 * it, from ln_x, its natural logarithm as numpy computes it (SIMD, a fraction of a ns a value,
 * where the C library's log costs 10-15 ns): subnormals below the smallest normal's bucket,
 * exact powers of two from their exponent, everything else floor(log(x) * factor) with the C
 * library's log, what math.log gives the Python reference and the OTel SDK. numpy's log is
 * within a few units in the last place of that one, under 1e-6 of an index; so where
 * ln_x * factor lies further than SK_NEAR from an integer its floor is the same, and nearer
 * (about one value in 500) the C library's log decides. */
#define SK_NEAR 1e-3
#define SK_LIFT 2147483648.0 /* 2**31 */
/* How far the other sign's indices are pushed out of a sign's range (indices stay within
 * 2**31 of zero). */
#define SK_FAR ((int64_t)1 << 40)

static inline int64_t
sk_index(double x, double ln_x, int scale, double factor)
{
    int64_t unit = (int64_t)1 << scale;
    if (x <= SK_MIN_NORMAL)
        return -1022 * unit - 1;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & SK_MANTISSA) == 0)
        return ((int64_t)(bits >> 52) - 1023) * unit - 1;
    int64_t top = 1024 * unit - 1;
    /* y's floor by truncation, y lifted above zero first (|y| < 2**31 here): the lift may round
     * y by up to 2**-22 of an index, never enough to carry it across a whole number unnoticed,
     * as that leaves it within SK_NEAR of one, where the C library's log decides anyway */
    double y = ln_x * factor + SK_LIFT;
    int64_t i = (int64_t)y;
    double frac = y - (double)i;
    i -= (int64_t)SK_LIFT;
    if (frac < SK_NEAR || frac > 1.0 - SK_NEAR)
        i = (int64_t)floor(log(x) * factor);
    return i < top ? i : top;
}

/* i >> c rounding down for negative i too, as Python's >> does: the compilers CPython builds
 * with shift negative numbers arithmetically (checked here at compile time), so no branch on
 * the sign, which is random for indices of values either side of 1. */
_Static_assert((-3 >> 1) == -2 && ((int64_t)-1 >> 5) == -1, "arithmetic right shift of negative numbers");
static inline int64_t
sk_shift(int64_t i, int c)
{
    return i >> c;
}

/* numpy's pairwise summation (what ndarray.sum runs over a contiguous row), non-finite values
 * read as 0.0 as the reference zeroes them, so the sums agree to the bit where numpy adds in
 * this order (the reference compares sums with a tolerance anyway). */
static double
sk_pairwise(const double *a, Py_ssize_t n)
{
    if (n < 8) {
        double r = -0.0;
        for (Py_ssize_t i = 0; i < n; i++)
            r += SK_FINITE(a[i]);
        return r;
    }
    if (n <= 128) {
        double r[8];
        Py_ssize_t i;
        for (int j = 0; j < 8; j++)
            r[j] = SK_FINITE(a[j]);
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += SK_FINITE(a[i + j]);
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += SK_FINITE(a[i]);
        return res;
    }
    Py_ssize_t half = n / 2;
    half -= half % 8;
    return sk_pairwise(a, half) + sk_pairwise(a + half, n - half);
}

/* The smallest c with (hi >> c) - (lo >> c) < max_size. */
static int
sk_change(int64_t lo, int64_t hi, Py_ssize_t max_size)
{
    int c = 0;
    while (sk_shift(hi, c) - sk_shift(lo, c) >= max_size)
        c++;
    return c;
}

/* Sketch of one row of n values; returns 0, or -1 when the buckets do not fit (the caller
 * then leaves the whole batch to the reference). */
static int
sk_row(const double *x, const double *ln, Py_ssize_t n, Py_ssize_t max_size, int max_scale, double factor,
       int32_t *ix, double *stats, int64_t *ints, int64_t *counts)
{
    Py_ssize_t count = 0, zeros = 0, nans = 0;
    /* per sign (the sign is random in most data: no branch on it) */
    int64_t plo = SK_FAR, phi = -SK_FAR, nlo = SK_FAR, nhi = -SK_FAR;
    double lo_value = INFINITY, hi_value = -INFINITY; /* over the nonzero finite values */
    for (Py_ssize_t i = 0; i < n; i++) {
        double v = x[i];
        if (!isfinite(v) || v == 0) {
            nans += isnan(v) != 0;
            zeros += v == 0;
            count += v == 0;
            ix[i] = SK_NONE;
            continue;
        }
        count++;
        int s = v < 0;
        int64_t k = sk_index(fabs(v), ln[i], max_scale, factor);
        ix[i] = (int32_t)k;
        /* the other sign's indices pushed SK_FAR out of the way, in arithmetic: a select on
         * the sign compiled to a branch, mispredicted for half the values of most data */
        int64_t neg = -(int64_t)s, away = neg & SK_FAR, back = ~neg & SK_FAR;
        int64_t kpl = k + away, kph = k - away, knl = k + back, knh = k - back;
        plo = kpl < plo ? kpl : plo;
        phi = kph > phi ? kph : phi;
        nlo = knl < nlo ? knl : nlo;
        nhi = knh > nhi ? knh : nhi;
        lo_value = v < lo_value ? v : lo_value;
        hi_value = v > hi_value ? v : hi_value;
    }
    int has_pos = phi > -SK_FAR / 2, has_neg = nhi > -SK_FAR / 2;
    int change = 0;
    if (has_pos)
        change = sk_change(plo, phi, max_size);
    if (has_neg) {
        int c = sk_change(nlo, nhi, max_size);
        change = c > change ? c : change;
    }
    if (change > max_scale - SK_MIN_SCALE)
        change = max_scale - SK_MIN_SCALE;
    int64_t poff = has_pos ? sk_shift(plo, change) : 0, noff = has_neg ? sk_shift(nlo, change) : 0;
    int64_t plen = has_pos ? sk_shift(phi, change) - poff + 1 : 0;
    int64_t nlen = has_neg ? sk_shift(nhi, change) - noff + 1 : 0;
    if (plen > max_size + 1 || nlen > max_size + 1)
        return -1;
    memset(counts, 0, 2 * (size_t)(max_size + 1) * sizeof(int64_t));
    if (has_pos || has_neg) {
        /* negative buckets follow the positive ones: slot = bucket - offset + sign * width */
        int64_t base[2] = {poff, noff - (max_size + 1)};
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t k = ix[i];
            if (k == SK_NONE)
                continue;
            counts[sk_shift(k, change) - base[x[i] < 0]]++;
        }
    }
    stats[0] = 0.0 + sk_pairwise(x, n);
    /* zeros count as 0.0 (never -0.0) where they are the smallest or largest value */
    stats[1] = lo_value < 0 ? lo_value : (zeros ? 0.0 : lo_value);
    stats[2] = hi_value > 0 ? hi_value : (zeros ? 0.0 : hi_value);
    ints[0] = count;
    ints[1] = zeros;
    ints[2] = nans;
    ints[3] = change;
    ints[4] = poff;
    ints[5] = plen;
    ints[6] = noff;
    ints[7] = nlen;
    return 0;
}

PyDoc_STRVAR(sketch_rows_doc,
             "sketch_rows(values, logs, n, max_size, max_scale, stats, ints, counts, /)\n--\n\n"
             "One exponential-histogram sketch per row of values (k rows of n float64, C order;\n"
             "logs: numpy's log of their magnitudes, the same shape),\n"
             "as infersight.stats.sketch.ExpHistogram._sketch_rows builds them: per row, stats\n"
             "(k x 3 float64) gets the sum, min and max of its finite values; ints (k x 8 int64)\n"
             "its count of finite values, zeros, NaNs, the scale change from max_scale, then the\n"
             "offset and length of the positive and of the negative buckets; counts (k x 2 x\n"
             "(max_size + 1) int64) the bucket counts from each offset. True when done; None,\n"
             "with the outputs in any state, for a max_scale outside 1..20 or buckets that do\n"
             "not fit. The GIL is released while the values are read.");

static PyObject *
sketch_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "sketch_rows() takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(args[2]);
    Py_ssize_t max_size = PyLong_AsSsize_t(args[3]);
    long max_scale = PyLong_AsLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (n <= 0 || max_size < 2 || max_scale < 1 || max_scale > 20)
        Py_RETURN_NONE;
    /* values, logs, stats, ints, counts */
    Py_buffer views[5];
    int got = 0;
    PyObject *result = NULL;
    int32_t *ix = NULL;
    static const int arg_of[5] = {0, 1, 5, 6, 7};
    for (; got < 5; got++) {
        int flags = PyBUF_C_CONTIGUOUS | (got >= 2 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[arg_of[got]], &views[got], flags) < 0)
            goto done;
    }
    Py_ssize_t k = views[0].len / (Py_ssize_t)(n * sizeof(double));
    Py_ssize_t width = 2 * (max_size + 1);
    if (k <= 0 || views[0].len != k * n * (Py_ssize_t)sizeof(double) || views[1].len != views[0].len ||
        views[2].len < k * 3 * (Py_ssize_t)sizeof(double) || views[3].len < k * 8 * (Py_ssize_t)sizeof(int64_t) ||
        views[4].len < k * width * (Py_ssize_t)sizeof(int64_t)) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    ix = PyMem_Malloc((size_t)n * sizeof(int32_t));
    if (ix == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    {
        const double *values = views[0].buf, *logs = views[1].buf;
        double *stats = views[2].buf;
        int64_t *ints = views[3].buf, *counts = views[4].buf;
        double factor = ldexp(1.0 / log(2.0), (int)max_scale);
        int failed = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t j = 0; j < k && !failed; j++)
            failed = sk_row(values + j * n, logs + j * n, n, max_size, (int)max_scale, factor, ix, stats + 3 * j,
                            ints + 8 * j, counts + j * width) < 0;
        Py_END_ALLOW_THREADS
        result = failed ? Py_None : Py_True;
        Py_INCREF(result);
    }
done:
    PyMem_Free(ix);
    while (got > 0)
        PyBuffer_Release(&views[--got]);
    return result;
}

/* ---- squared_deviations: the sum numpy's var of a float64 array adds up, in its order ----
 *
 * sum((x - mean) ** 2) over a contiguous float64 array, each addition where numpy's pairwise
 * summation makes it (numpy/_core/src/umath/loops_utils.h: halves cut at a multiple of 8 down
 * to 128 values, those added on 8 accumulators joined as ((0+1)+(2+3))+((4+5)+(6+7)), the rest
 * one by one; under 8 values one by one from 0), so the result is the one numpy's
 * x.var() / x.std() reach through its array of squared deviations, bit for bit, without that
 * array. Each square is rounded before it is added, as numpy's separate subtract, multiply
 * and sum passes round it: no fused multiply-add (infersight.stats.reference._sorted_std is
 * the reference; the tests compare bit for bit). */
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static double
sq_dev_sum(const double *a, Py_ssize_t n, double mean)
{
    if (n < 8) {
        double res = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            double d = a[i] - mean;
            double sq = d * d;
            res += sq;
        }
        return res;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) {
            double d = a[j] - mean;
            r[j] = d * d;
        }
        Py_ssize_t i = 8;
        for (; i < n - n % 8; i += 8) {
            for (int j = 0; j < 8; j++) {
                double d = a[i + j] - mean;
                double sq = d * d;
                r[j] += sq;
            }
        }
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) {
            double d = a[i] - mean;
            double sq = d * d;
            res += sq;
        }
        return res;
    }
    Py_ssize_t half = n / 2;
    half -= half % 8;
    return sq_dev_sum(a, half, mean) + sq_dev_sum(a + half, n - half, mean);
}

PyDoc_STRVAR(squared_deviations_doc,
             "squared_deviations(values, mean, /)\n--\n\n"
             "The sum of (x - mean) ** 2 over a C-contiguous float64 buffer, added in numpy's\n"
             "pairwise order: what numpy's var sums, bit for bit. The GIL is released.");

static PyObject *
squared_deviations(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "squared_deviations() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    double mean = PyFloat_AsDouble(args[1]);
    if (mean == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (view.itemsize != (Py_ssize_t)sizeof(double) || view.format == NULL || strcmp(view.format, "d") != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "squared_deviations() needs a buffer of float64 ('d') values");
        return NULL;
    }
    double total;
    Py_BEGIN_ALLOW_THREADS
    total = sq_dev_sum((const double *)view.buf, view.len / (Py_ssize_t)sizeof(double), mean);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyFloat_FromDouble(total);
}

/* ---- sketch_knots: the knots of infersight.stats.cdf.KnotsBatch.from_sketches ---- */

/* Append one knot (x, count) if it lies strictly inside (start, max). */
#define SKN_PUT(xv, cv)                                                                                              \
    do {                                                                                                             \
        double x_ = (xv);                                                                                            \
        if (x_ > start && x_ < mx) {                                                                                 \
            ox[o] = x_;                                                                                              \
            oc[o] = (cv);                                                                                            \
            o++;                                                                                                     \
        }                                                                                                            \
    } while (0)

PyDoc_STRVAR(sketch_knots_doc,
             "sketch_knots(counts, info, lo, hi, mins, maxs, x, F, starts, /)\n--\n\n"
             "The knots KnotsBatch.from_sketches builds, for k sketches: counts, lo and hi (float64)\n"
             "hold every sketch's buckets in turn, its negatives from the most negative (lo, hi:\n"
             "their magnitudes' bounds) then its positives; info (k x 7 float64) per sketch the\n"
             "number of negative and positive buckets, two unused columns, the zero count and the\n"
             "count; mins, maxs its minimum and maximum. x and F (float64, room for every bucket\n"
             "knot plus 6 a sketch) get the knots, starts (k + 1 intp) where each sketch's begin.\n"
             "Returns the number of knots, or -1 for counts that are not whole and non-negative, -2\n"
             "for buckets that do not add up to the count, -3 for knots whose x do not rise or whose\n"
             "counts fall; None for arrays whose sizes do not fit together.");

static PyObject *
sketch_knots(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "sketch_knots() takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_buffer v[9];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 9; got++) {
        int flags = PyBUF_C_CONTIGUOUS | (got >= 6 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[got], &v[got], flags) < 0)
            goto done;
    }
    {
        const Py_ssize_t D = (Py_ssize_t)sizeof(double), I = (Py_ssize_t)sizeof(Py_ssize_t);
        Py_ssize_t nb = v[0].len / D, k = v[4].len / D;
        Py_ssize_t room = v[6].len / D;
        int fits = v[0].len == nb * D && v[1].len == k * 7 * D && v[2].len == v[0].len && v[3].len == v[0].len &&
                   v[4].len == k * D && v[5].len == v[4].len && v[7].len == v[6].len && v[8].len == (k + 1) * I &&
                   room >= nb + 6 * k;
        const double *cnt = v[0].buf, *info = v[1].buf, *lo = v[2].buf, *hi = v[3].buf, *mins = v[4].buf,
                     *maxs = v[5].buf;
        if (fits) {
            /* the bucket numbers add up to the buckets given */
            Py_ssize_t total = 0;
            for (Py_ssize_t i = 0; i < k && fits; i++) {
                double nn = info[7 * i], np_ = info[7 * i + 1];
                fits = nn >= 0 && np_ >= 0 && nn == floor(nn) && np_ == floor(np_) && nn + np_ <= (double)(nb - total);
                if (fits)
                    total += (Py_ssize_t)nn + (Py_ssize_t)np_;
            }
            fits = fits && total == nb;
        }
        if (!fits) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        double *ox = v[6].buf, *oc = v[7].buf;
        Py_ssize_t *starts = v[8].buf;
        Py_ssize_t code = 0, o = 0, b = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < nb; i++)
            if (!(cnt[i] >= 0 && cnt[i] == floor(cnt[i]))) {
                code = -1;
                break;
            }
        for (Py_ssize_t i = 0; i < k && code == 0; i++) {
            Py_ssize_t m = (Py_ssize_t)info[7 * i] + (Py_ssize_t)info[7 * i + 1];
            double held = 0.0;
            for (Py_ssize_t t = 0; t < m; t++)
                held += cnt[b + t];
            b += m;
            if (held + info[7 * i + 5] != info[7 * i + 6])
                code = -2;
        }
        b = 0;
        for (Py_ssize_t i = 0; i < k && code == 0; i++) {
            Py_ssize_t nn = (Py_ssize_t)info[7 * i], npos = (Py_ssize_t)info[7 * i + 1];
            double zc = info[7 * i + 5], c = info[7 * i + 6];
            double start = nextafter(mins[i], -INFINITY), mx = maxs[i];
            starts[i] = o;
            ox[o] = start;
            oc[o] = 0.0;
            o++;
            /* the buckets' counts run as a sum from the first of the sketch (whole: exact) */
            double run = 0.0;
            if (nn) {
                SKN_PUT(nextafter(-hi[b], -INFINITY), 0.0);
                for (Py_ssize_t t = 0; t < nn; t++) {
                    run += cnt[b + t];
                    SKN_PUT(nextafter(-lo[b + t], -INFINITY), run);
                }
            }
            double neg_total = run;
            if (zc != 0) {
                SKN_PUT(nextafter(0.0, -INFINITY), neg_total);
                SKN_PUT(0.0, neg_total + zc);
            }
            if (npos) {
                Py_ssize_t p = b + nn;
                SKN_PUT(lo[p], neg_total + zc);
                for (Py_ssize_t t = 0; t < npos; t++) {
                    run += cnt[p + t];
                    SKN_PUT(hi[p + t], run + zc);
                }
            }
            b += nn + npos;
            ox[o] = mx;
            oc[o] = c;
            o++;
            double n = c >= 1 ? c : 1.0;
            for (Py_ssize_t j = starts[i] + 1; j < o; j++)
                if (!(ox[j] > ox[j - 1] && oc[j] >= oc[j - 1]))
                    code = -3;
            for (Py_ssize_t j = starts[i]; j < o; j++)
                oc[j] = oc[j] / n;
        }
        starts[k] = o;
        Py_END_ALLOW_THREADS
        result = PyLong_FromSsize_t(code ? code : o);
    }
done:
    while (got > 0)
        PyBuffer_Release(&v[--got]);
    return result;
}
#undef SKN_PUT

/* ---- knot_distances: infersight.stats.cdf.distances_batch, one merge per pair ---- */

/* The envelope and the interpolated value of one set of knots (x, f: n of them) at a point p
 * that is not one of its knots, c of them lying before p: as infersight.stats.cdf._side. */
static inline void
kd_side(const double *x, const double *f, Py_ssize_t n, Py_ssize_t c, double p, double *lower, double *upper,
        double *at)
{
    double lo = c > 0 ? f[c - 1] : 0.0;
    *lower = lo;
    *upper = c < n ? f[c] : 1.0;
    if (c == 0)
        *at = 0.0;
    else if (c == n)
        *at = 1.0;
    else {
        double x0 = x[c - 1];
        *at = (f[c] - lo) / (x[c] - x0) * (p - x0) + lo;
    }
}

static inline double
kd_max(double a, double b)
{
    return a > b ? a : b;
}

/* The five distances of one pair of sets of knots (see distances_batch): the union of both in
 * order, a knot of both counted once; at each union point both envelopes and the difference of
 * the interpolated CDFs; between consecutive points the KS widening, the Wasserstein gaps and
 * the integral of |d| linear between them (exact at a sign change). */
static void
kd_pair(const double *xa, const double *fa, Py_ssize_t na, const double *xb, const double *fb, Py_ssize_t nb,
        double *out)
{
    Py_ssize_t i = 0, j = 0;
    double lo = 0.0, hi = -INFINITY, w = 0.0, w_lo = 0.0, w_hi = 0.0;
    double pu = 0.0, pla = 0.0, plb = 0.0, pd = 0.0; /* the previous union point's */
    int first = 1;
    while (i < na || j < nb) {
        double u, la, ua, lb, ub, d, at;
        if (j >= nb || (i < na && xa[i] < xb[j])) {
            u = xa[i];
            la = ua = fa[i];
            kd_side(xb, fb, nb, j, u, &lb, &ub, &at);
            d = fa[i] - at;
            i++;
        }
        else if (i >= na || xb[j] < xa[i]) {
            u = xb[j];
            lb = ub = fb[j];
            kd_side(xa, fa, na, i, u, &la, &ua, &at);
            d = at - fb[j];
            j++;
        }
        else {
            u = xa[i];
            la = ua = fa[i];
            lb = ub = fb[j];
            d = fa[i] - fb[j];
            i++;
            j++;
        }
        lo = kd_max(lo, kd_max(la - ub, lb - ua));
        hi = kd_max(hi, kd_max(ua - lb, ub - la));
        if (!first) {
            double h = u - pu;
            double gap_hi = kd_max(ua - plb, ub - pla);
            double gap_lo = kd_max(kd_max(pla - ub, plb - ua), 0.0);
            if (nextafter(pu, INFINITY) < u)
                hi = kd_max(hi, gap_hi);
            w_lo += gap_lo * h;
            w_hi += gap_hi * h;
            double s = fabs(pd) + fabs(d);
            w += (pd * d >= 0 ? s / 2 : (pd * pd + d * d) / (2 * s)) * h;
        }
        first = 0;
        pu = u;
        pla = la;
        plb = lb;
        pd = d;
    }
    out[0] = lo;
    out[1] = kd_max(hi, lo);
    out[2] = w;
    out[3] = w_lo;
    out[4] = w_hi;
}

/* starts (k + 1 of them) rise from 0 to size with at least two knots in each set. */
static int
kd_starts_ok(const Py_ssize_t *starts, Py_ssize_t k, Py_ssize_t size)
{
    if (starts[0] != 0 || starts[k] != size)
        return 0;
    for (Py_ssize_t i = 0; i < k; i++)
        if (starts[i + 1] - starts[i] < 2)
            return 0;
    return 1;
}

PyDoc_STRVAR(knot_distances_doc,
             "knot_distances(ax, af, astarts, bx, bf, bstarts, out, /)\n--\n\n"
             "infersight.stats.cdf.distances_batch of two KnotsBatch (x and F: float64, C order;\n"
             "starts: intp, k + 1 of them, from 0 to the size, at least two knots a set): row i of\n"
             "out (k x 5 float64) gets (ks_lo, ks_hi, w, w_lo, w_hi) of set i of a against set i of\n"
             "b, by one merge of the two sets. True when done; None, with out untouched, for\n"
             "arrays whose sizes do not fit together. The GIL is released while it runs.");

static PyObject *
knot_distances(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError, "knot_distances() takes 7 arguments (%zd given)", nargs);
        return NULL;
    }
    /* ax, af, astarts, bx, bf, bstarts, out */
    Py_buffer views[7];
    int got = 0;
    PyObject *result = NULL;
    for (; got < 7; got++) {
        int flags = PyBUF_C_CONTIGUOUS | (got == 6 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[got], &views[got], flags) < 0)
            goto done;
    }
    {
        const Py_ssize_t D = (Py_ssize_t)sizeof(double), I = (Py_ssize_t)sizeof(Py_ssize_t);
        Py_ssize_t na = views[0].len / D, nb = views[3].len / D;
        Py_ssize_t k = views[2].len / I - 1;
        int fits = k >= 0 && views[0].len == na * D && views[1].len == views[0].len && views[3].len == nb * D &&
                   views[4].len == views[3].len && views[2].len == (k + 1) * I && views[5].len == views[2].len &&
                   views[6].len == k * 5 * D;
        const Py_ssize_t *sa = views[2].buf, *sb = views[5].buf;
        if (!fits || !kd_starts_ok(sa, k, na) || !kd_starts_ok(sb, k, nb)) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        const double *ax = views[0].buf, *af = views[1].buf, *bx = views[3].buf, *bf = views[4].buf;
        double *out = views[6].buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < k; i++)
            kd_pair(ax + sa[i], af + sa[i], sa[i + 1] - sa[i], bx + sb[i], bf + sb[i], sb[i + 1] - sb[i], out + 5 * i);
        Py_END_ALLOW_THREADS
        result = Py_True;
        Py_INCREF(result);
    }
done:
    while (got > 0)
        PyBuffer_Release(&views[--got]);
    return result;
}

/* ---- the one-sided Kolmogorov-Smirnov tail: smirnov_sf ------------------------------------- */

/* log(n!) - log(sqrt(2 pi n) (n/e)^n): Stirling's error, by its series past 15 (Loader 2000). */
static double
ss_stirlerr(double n)
{
    static const double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680, S4 = 1.0 / 1188;
    if (n <= 15.0)
        return lgamma(n + 1.0) - (n + 0.5) * log(n) + n - 0.918938533204672741780329736406; /* log sqrt(2 pi) */
    double nn = n * n;
    if (n > 500)
        return (S0 - S1 / nn) / n;
    if (n > 80)
        return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35)
        return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/* x log(x / m) + m - x without the cancellation of its terms near x = m (Loader 2000). */
static double
ss_bd0(double x, double m)
{
    if (fabs(x - m) < 0.1 * (x + m)) {
        double v = (x - m) / (x + m), s = (x - m) * v, ej = 2 * x * v;
        v *= v;
        for (int j = 1; j < 1000; j++) {
            ej *= v;
            double s1 = s + ej / (2 * j + 1);
            if (s1 == s)
                return s1;
            s = s1;
        }
        return s;
    }
    return x * log(x / m) + m - x;
}

/* P(X = j) for X ~ Binomial(n, p), given n p and n q = n (1 - p), to a few ulps at any n
 * (the saddle-point form, Loader 2000). 0 < j < n. */
static double
ss_binom_pmf(double j, double n, double np, double nq)
{
    double lc = ss_stirlerr(n) - ss_stirlerr(j) - ss_stirlerr(n - j) - ss_bd0(j, np) - ss_bd0(n - j, nq);
    return exp(lc) * sqrt(n / (6.283185307179586476925286766559 * j * (n - j)));
}

/* P(D+_n >= d) by Smirnov's (Birnbaum-Tingey's) sum,
 *   d * sum_{j=0}^{floor(n (1 - d))} C(n, j) (d + j/n)^(j-1) (1 - d - j/n)^(n-j),
 * each term written as Binomial(n, d + j/n)'s probability of j over (d + j/n). */
static double
ss_smirnov_sf(long n, double d)
{
    if (!(d > 0.0))
        return 1.0;
    if (d >= 1.0)
        return 0.0;
    double fn = (double)n, nd = fn * d;
    double top = floor(fn - nd); /* floor(n (1 - d)) */
    if (top > fn - 1)
        top = fn - 1;
    /* j = 0: (1 - d)^n, as n log1p(-d) */
    double sum = exp(fn * log1p(-d));
    for (long j = 1; j <= (long)top; j++) {
        double fj = (double)j, np = nd + fj, nq = (fn - fj) - nd;
        if (!(nq > 0.0))
            break;
        sum += ss_binom_pmf(fj, fn, np, nq) * (fn / np) * d;
    }
    return sum < 1.0 ? sum : 1.0;
}

PyDoc_STRVAR(smirnov_sf_doc,
             "smirnov_sf(n, d, /)\n--\n\n"
             "P(D+_n >= d) for the one-sided one-sample Kolmogorov-Smirnov statistic of n values:\n"
             "scipy.special.smirnov(n, d) to ~1e-13 relative (its reference; see\n"
             "infersight.stats.drift._dist.kstwo_sf), by Smirnov's sum with each term as a\n"
             "binomial probability in Loader's saddle-point form. n >= 1; d a float.");

static PyObject *
smirnov_sf(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "smirnov_sf() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    long n = PyLong_AsLong(args[0]);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 1) {
        PyErr_Format(PyExc_ValueError, "smirnov_sf: n must be at least 1, got %ld", n);
        return NULL;
    }
    double d = PyFloat_AsDouble(args[1]);
    if (d == -1.0 && PyErr_Occurred())
        return NULL;
    if (isnan(d))
        return PyFloat_FromDouble(NAN);
    double p;
    Py_BEGIN_ALLOW_THREADS
    p = ss_smirnov_sf(n, d);
    Py_END_ALLOW_THREADS
    return PyFloat_FromDouble(p);
}

static PyMethodDef methods[] = {
    {"encode_spans", (PyCFunction)(void (*)(void))encode_spans, METH_FASTCALL, encode_spans_doc},
    {"untrack", (PyCFunction)(void (*)(void))untrack, METH_FASTCALL, untrack_doc},
    {"track", (PyCFunction)(void (*)(void))track, METH_FASTCALL, track_doc},
    {"row_dict", (PyCFunction)(void (*)(void))row_dict, METH_FASTCALL, row_dict_doc},
    {"row_of_items", (PyCFunction)(void (*)(void))row_of_items, METH_FASTCALL, row_of_items_doc},
    {"items_row", (PyCFunction)(void (*)(void))items_row, METH_FASTCALL, items_row_doc},
    {"records_matrix", (PyCFunction)(void (*)(void))records_matrix, METH_FASTCALL, records_matrix_doc},
    {"sketch_rows", (PyCFunction)(void (*)(void))sketch_rows, METH_FASTCALL, sketch_rows_doc},
    {"squared_deviations", (PyCFunction)(void (*)(void))squared_deviations, METH_FASTCALL, squared_deviations_doc},
    {"columns_matrix", (PyCFunction)(void (*)(void))columns_matrix, METH_FASTCALL, columns_matrix_doc},
    {"knot_distances", (PyCFunction)(void (*)(void))knot_distances, METH_FASTCALL, knot_distances_doc},
    {"sketch_knots", (PyCFunction)(void (*)(void))sketch_knots, METH_FASTCALL, sketch_knots_doc},
    {"smirnov_sf", (PyCFunction)(void (*)(void))smirnov_sf, METH_FASTCALL, smirnov_sf_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "infersight._speedups",
    "C paths of infersight: the span encoder, row converters, column sketch and knot distances (see each caller's Python reference).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    static const struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_name, "name"},
        {&s_context, "context"},
        {&s_parent, "parent"},
        {&s_kind, "kind"},
        {&s_start_time, "start_time"},
        {&s_end_time, "end_time"},
        {&s_attributes, "attributes"},
        {&s_dropped_attributes, "dropped_attributes"},
        {&s_events, "events"},
        {&s_dropped_events, "dropped_events"},
        {&s_links, "links"},
        {&s_status_code, "status_code"},
        {&s_status_message, "status_message"},
        {&s_trace_id, "trace_id"},
        {&s_span_id, "span_id"},
        {&s_is_remote, "is_remote"},
        {&s_trace_state, "trace_state"},
        {&s_value, "value"},
        {&s_items, "items"},
        {&s_item, "item"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
