# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled HTTP/1.1 head parser (RFC 9112), sans-IO: the hot path of every request.

Twin of ``pure_parser.py``, which is the reference: the same classes and attributes, the same
statuses and the same accept/reject decision on every input. It must not know about sockets,
config or asyncio.

Strategy: one memchr walk over the line feeds finds the end of the head (the first CRLFCRLF),
rejects bare LFs and records each line as offsets in a C array owned by the parser. Each line
is then checked with 256-entry lookup tables (built at import from ``grammar.py``, the one
statement of the HTTP grammar), header names are matched case-insensitively in C,
and Python objects are made only for what the gateway acts on (method, target, path, host,
X-Forwarded-For, Upgrade, Transfer-Encoding), for the forwarded header lines (``kept``, one
allocation) and for the head itself (``raw``).

The walk uses memchr for LF rather than memmem for CRLFCRLF: the same pass that finds the end
checks every LF and records the lines, so the head is not searched twice.

Errors come out in the twin's order of checks. The twin looks for bare CRs before anything
else; here that scan runs only once some check has failed (a bare CR always makes one fail:
every byte of a head is checked against a table that excludes CR), so a valid head is never
searched for them.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy


cdef extern from "Python.h":
    bytes PyBytes_FromStringAndSize(const char *v, Py_ssize_t n)
    char *PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)


# Request-target bytes sixteen at a time where SSE2 exists (every x86-64): exactly the C_URI
# class below, so a plain path costs what the VCHAR check it replaced did. Elsewhere (or built
# with -DFASTGW_NO_SIMD, which the tests use to check the fallback) the C_URI table.
cdef extern from *:
    """
    #if (defined(__SSE2__) || defined(_M_X64)) && !defined(FASTGW_NO_SIMD)
    #include <emmintrin.h>
    #define FASTGW_URI_SIMD 1
    /* Bits 0-15: the bytes of p[0:16] that are not C_URI bytes; bits 16-31: the '%' bytes.
       Signed compares: a byte >= 0x80 is below 0x21. */
    static inline int fastgw_uri16(const unsigned char *p) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i bad = _mm_cmplt_epi8(v, _mm_set1_epi8(0x21));           /* CTL SP obs-text */
        bad = _mm_or_si128(bad, _mm_andnot_si128(                          /* { | } DEL, not ~ */
            _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7E)), _mm_cmpgt_epi8(v, _mm_set1_epi8(0x7A))));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi8(                           /* " # */
            _mm_or_si128(v, _mm_set1_epi8(0x01)), _mm_set1_epi8(0x23)));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi8(                           /* < > */
            _mm_or_si128(v, _mm_set1_epi8(0x02)), _mm_set1_epi8(0x3E)));
        bad = _mm_or_si128(bad, _mm_and_si128(                            /* [ \\ ] ^ */
            _mm_cmpgt_epi8(v, _mm_set1_epi8(0x5A)), _mm_cmplt_epi8(v, _mm_set1_epi8(0x5F))));
        bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x60)));  /* ` */
        return _mm_movemask_epi8(bad)
               | (_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(0x25))) << 16);
    }
    #else
    #define FASTGW_URI_SIMD 0
    static inline int fastgw_uri16(const unsigned char *p) { (void)p; return 0xFFFF; }
    #endif
    """
    int FASTGW_URI_SIMD
    int fastgw_uri16(const unsigned char *p) noexcept nogil


cdef enum:
    CR = 13
    LF = 10
    SP = 32
    HT = 9
    COLON = 58
    COMMA = 44
    SEMI = 59
    PCT = 37
    EQUALS = 61
    DQUOTE = 34
    BACKSLASH = 92
    MAX_RESPONSE_LINE = 8192
    MAX_CHUNK_LINE = 4096
    MAX_TRAILER = 32768

# character classes, one bit each in CLS, filled from grammar.py's sets
cdef enum:
    C_TCHAR = 1    # RFC 9110 tchar
    C_VALUE = 2    # field-value bytes: VCHAR, obs-text, SP, HTAB
    C_TARGET = 4   # VCHAR and obs-text (what an absolute-form authority is first held to)
    C_HOST = 8     # reg-name / IP-literal / port characters
    C_DIGIT = 16
    C_URI = 32     # request-target path/query bytes (RFC 3986): unreserved, sub-delims, ":",
                   # "@", "/", "?", and "%" (which must begin a pct-encoded triplet)
    C_QDTEXT = 64  # quoted-string text (RFC 9110 5.6.4): HTAB, SP, VCHAR except DQUOTE and
                   # backslash, obs-text
    C_PCT = 128    # '%' alone

cdef unsigned char CLS[256]
cdef unsigned char LOWER[256]
cdef signed char HEXVAL[256]
# header-name bytes: 1 for a tchar other than '_', else 0. The loop that finds the colon runs
# on it and stops at a '_' too (which CGI/WSGI backends read as '-'): a name holding one is
# known without any work per byte beyond the lookup the loop always made.
cdef unsigned char NAME[256]


from fastgw._core.grammar import host_shape_ok as _grammar_host_shape_ok


cdef int _init_tables() except -1:
    """Fill the lookup tables from the grammar (once, at import: the scanning loops only ever
    read these C arrays)."""
    from fastgw._core import grammar
    cdef int c
    classes = (
        (C_TCHAR, grammar.TCHAR),
        (C_VALUE, grammar.FIELD_VALUE),
        (C_TARGET, grammar.VCHAR | grammar.OBS_TEXT),
        (C_HOST, grammar.HOST),
        (C_DIGIT, grammar.DIGIT),
        (C_URI, grammar.URI),
        (C_QDTEXT, grammar.QDTEXT),
        (C_PCT, frozenset(b"%")),
    )
    for c in range(256):
        CLS[c] = 0
        LOWER[c] = c + 32 if 65 <= c <= 90 else c
        HEXVAL[c] = int(chr(c), 16) if c in grammar.HEXDIG else -1
        NAME[c] = c in grammar.TCHAR and c != 0x5F
        for bit, members in classes:
            if c in members:
                CLS[c] |= bit
    return 0


_init_tables()


class ParseError(Exception):
    """The bytes are not a valid HTTP/1.1 message; ``status`` is the response to send."""

    def __init__(self, status, reason):
        Exception.__init__(self, status, reason)
        self.status = status
        self.reason = reason

    def __str__(self):
        return f"{self.status}: {self.reason}"


# Kinds of header line, by name. Which kinds a message drops depends on its direction.
cdef enum:
    K_OTHER = 0
    K_HOST
    K_CONTENT_LENGTH
    K_TRANSFER_ENCODING
    K_CONNECTION
    K_UPGRADE
    K_HOP          # the rest of grammar.HOP_BY_HOP (keep-alive, proxy-connection, te), and
                   # Trailer (hop-by-hop since RFC 2616 13.5.1)
    K_XFF          # x-forwarded-for
    K_FORWARDING   # every other x-forwarded-* name, forwarded, x-real-ip: the gateway's own in
                   # a request (it writes X-Forwarded-Proto/-Host, the others not at all)
    K_EXPECT
    K_CLOSE        # a field named "close": dropped when Connection lists close
    K_UNDERSCORE   # a request field whose name holds '_', dropped (see U_DROP, U_ALLOW)

# What a request does with a field whose name holds '_' (CGI/WSGI backends read "X_Forwarded_For"
# as X-Forwarded-For). Responses keep them: the names are classified as they are (U_KEEP).
cdef enum:
    U_KEEP = 0
    U_DROP = 1    # limits.underscores_in_headers false (nginx's default): dropped
    U_ALLOW = 2   # ... true: kept, unless it names, read with '-', a field the gateway acts on

ctypedef struct Line:
    Py_ssize_t start    # first byte of the line
    Py_ssize_t end      # the CR that ends it
    Py_ssize_t vstart   # field value, without leading and trailing SP/HTAB
    Py_ssize_t vend
    Py_ssize_t colon
    int kind
    bint keep

ctypedef struct Fields:
    Py_ssize_t n_host
    Py_ssize_t host        # line index of the (last) Host field
    Py_ssize_t n_length
    Py_ssize_t n_encoding
    Py_ssize_t n_xff
    Py_ssize_t n_upgrade
    Py_ssize_t n_expect
    bint conn_close        # Connection lists "close"
    bint conn_keep_alive   # ... "keep-alive"
    bint conn_upgrade      # ... "upgrade"
    bint conn_other        # ... some other token (a field to drop, maybe)


cdef bytes M_GET = b"GET"
cdef bytes M_POST = b"POST"
cdef bytes M_PUT = b"PUT"
cdef bytes M_HEAD = b"HEAD"
cdef bytes M_DELETE = b"DELETE"
cdef bytes M_PATCH = b"PATCH"
cdef bytes M_OPTIONS = b"OPTIONS"
cdef bytes EMPTY = b""
cdef bytes CHUNKED = b"chunked"


# ---------------------------------------------------------------------------------------------
# small C helpers

cdef inline bint _name_is(const unsigned char *s, const char *lower, Py_ssize_t n) noexcept:
    """s (n tchar bytes) equals the lowercase name ``lower``, ignoring ASCII case.

    OR-ing 0x20 folds case exactly here: among tchar bytes only letters change, and the
    names compared against hold only lowercase letters and '-'.
    """
    cdef Py_ssize_t i
    for i in range(n):
        if (s[i] | 0x20) != <unsigned char>lower[i]:
            return False
    return True


cdef inline bint _lower_eq(const unsigned char *a, const unsigned char *b,
                           Py_ssize_t n) noexcept:
    """a and b (any bytes) are equal after ASCII lowercasing, like ``bytes.lower()``."""
    cdef Py_ssize_t i
    for i in range(n):
        if LOWER[a[i]] != LOWER[b[i]]:
            return False
    return True


cdef inline bint _all(const unsigned char *p, Py_ssize_t a, Py_ssize_t b,
                      unsigned char cls) noexcept:
    while a < b:
        if not (CLS[p[a]] & cls):
            return False
        a += 1
    return True


# Eight bytes at a time (SWAR): exact tests for "some byte is below n" (n <= 128) and "some
# byte equals b". A word that holds no byte below 0x20 and no DEL is all VCHAR/obs-text/SP.
cdef uint64_t ONES = 0x0101010101010101
cdef uint64_t HIGHS = 0x8080808080808080


cdef inline uint64_t _load8(const unsigned char *p) noexcept:
    cdef uint64_t x
    memcpy(&x, p, 8)
    return x


cdef inline bint _has_below(uint64_t x, uint64_t n) noexcept:
    return ((x - ONES * n) & ~x & HIGHS) != 0


cdef inline bint _has_byte(uint64_t x, uint64_t b) noexcept:
    cdef uint64_t y = x ^ (ONES * b)
    return ((y - ONES) & ~y & HIGHS) != 0


cdef inline bint _value_ok(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """p[a:b] holds only field-value bytes (VCHAR, obs-text, SP, HTAB)."""
    cdef uint64_t x
    while a + 8 <= b:
        x = _load8(p + a)
        if (_has_below(x, 0x20) or _has_byte(x, 0x7F)) and not _all(p, a, a + 8, C_VALUE):
            return False  # (a word with a HTAB is checked byte by byte)
        a += 8
    return _all(p, a, b, C_VALUE)


cdef inline int _uri_scan(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """0 if p[a:b] holds a byte outside C_URI, else 1, or 2 when one of its bytes is '%'.
    Sixteen bytes at a time with SSE2 (the last block overlapping the one before), else eight
    table lookups AND-ed per step, one branch each."""
    cdef int m = 0
    if FASTGW_URI_SIMD and b - a >= 16:
        while a + 16 <= b:
            m |= fastgw_uri16(p + a)
            if m & 0xFFFF:
                return 0
            a += 16
        if a < b:
            m |= fastgw_uri16(p + b - 16)
            if m & 0xFFFF:
                return 0
        return 2 if m else 1
    cdef unsigned char acc = C_URI | C_PCT, pct = 0
    while a + 8 <= b:
        acc &= (CLS[p[a]] & CLS[p[a + 1]] & CLS[p[a + 2]] & CLS[p[a + 3]]
                & CLS[p[a + 4]] & CLS[p[a + 5]] & CLS[p[a + 6]] & CLS[p[a + 7]])
        pct |= (CLS[p[a]] | CLS[p[a + 1]] | CLS[p[a + 2]] | CLS[p[a + 3]]
                | CLS[p[a + 4]] | CLS[p[a + 5]] | CLS[p[a + 6]] | CLS[p[a + 7]])
        if not (acc & C_URI):
            return 0
        a += 8
    while a < b:
        acc &= CLS[p[a]]
        pct |= CLS[p[a]]
        a += 1
    if not (acc & C_URI):
        return 0
    return 2 if pct & C_PCT else 1


cdef bint _pct_ok(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """Every '%' in p[a:b] begins a pct-encoded triplet: '%' HEXDIG HEXDIG."""
    cdef const unsigned char *q = <const unsigned char *>memchr(p + a, PCT, b - a)
    cdef Py_ssize_t i
    while q != NULL:
        i = q - p
        if i + 2 >= b or HEXVAL[p[i + 1]] < 0 or HEXVAL[p[i + 2]] < 0:
            return False
        q = <const unsigned char *>memchr(p + i + 3, PCT, b - i - 3)
    return True


cdef inline bint _host_ok(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """p[a:b] holds only C_HOST bytes, and each '%' begins an escape."""
    cdef unsigned char acc = C_HOST, any = 0
    cdef Py_ssize_t i
    for i in range(a, b):
        acc &= CLS[p[i]]
        any |= CLS[p[i]]
    if not acc:
        return False
    return not (any & C_PCT) or _pct_ok(p, a, b)


cdef bint _host_shape_ok(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) except -1:
    """p[a:b] (HOST bytes) is uri-host [":" port]: a reg-name or IPv4 address without ':',
    '[' or ']', then optionally ':' and digits. An IP-literal ('[...]', rare) is checked by
    grammar.host_shape_ok."""
    if a < b and p[a] == b'[':
        return _grammar_host_shape_ok(p[a:b])
    cdef Py_ssize_t i = a
    while i < b and p[i] != b':':
        if p[i] == b'[' or p[i] == b']':
            return False
        i += 1
    if i == b:
        return True
    i += 1
    while i < b:
        if p[i] < b'0' or p[i] > b'9':
            return False
        i += 1
    return True


cdef inline Py_ssize_t _authority_end(const unsigned char *t, Py_ssize_t rest,
                                      Py_ssize_t n) noexcept:
    """Where the authority of an absolute-form target, starting at ``rest``, ends."""
    while rest < n and t[rest] != b'/' and t[rest] != b'?' and t[rest] != b'#':
        rest += 1
    return rest


cdef bint _target_ok(const unsigned char *t, Py_ssize_t n) noexcept:
    """The bytes of a request-target are those of a URI (RFC 3986; RFC 9112 3.2): path and
    query characters, each '%' an escape. An absolute-form authority is only held to VCHAR
    here; its own check (the Host rules) comes later and names the fault. The common case, a
    plain path, is one pass that also notes whether there is a '%' to check."""
    cdef Py_ssize_t rest, cut
    cdef int scan = _uri_scan(t, 0, n)
    if scan == 1:
        return True
    if scan == 0:
        if n >= 7 and _lower_eq(t, b"http://", 7):
            rest = 7
        elif n >= 8 and _lower_eq(t, b"https://", 8):
            rest = 8
        else:
            return False
        cut = _authority_end(t, rest, n)
        if not _all(t, rest, cut, C_TARGET) or not _all(t, cut, n, C_URI):
            return False
    return _pct_ok(t, 0, n)


cdef inline bint _ows(unsigned char c) noexcept:
    return c == SP or c == HT


cdef inline Py_ssize_t _element(const unsigned char *p, Py_ssize_t a, Py_ssize_t ve,
                                 Py_ssize_t *ts, Py_ssize_t *te) noexcept:
    """One element of the comma list p[a:ve] (RFC 9110 5.6.1): its bounds without OWS go to
    ts/te (equal when the element is empty); returns where it ends (the comma, or ve)."""
    cdef const unsigned char *q = <const unsigned char *>memchr(p + a, COMMA, ve - a)
    cdef Py_ssize_t b = ve if q == NULL else q - p
    cdef Py_ssize_t s = a, e = b
    while s < e and _ows(p[s]):
        s += 1
    while e > s and _ows(p[e - 1]):
        e -= 1
    ts[0] = s
    te[0] = e
    return b


cdef Py_ssize_t _bare_cr(const unsigned char *p, Py_ssize_t n) noexcept:
    """Index of the first CR in p[:n] not followed by LF, or -1."""
    cdef Py_ssize_t pos = 0, i
    cdef const unsigned char *q
    while pos < n:
        q = <const unsigned char *>memchr(p + pos, CR, n - pos)
        if q == NULL:
            return -1
        i = q - p
        if i + 1 >= n or p[i + 1] != LF:
            return i
        pos = i + 2
    return -1


cdef inline int _classify(const unsigned char *s, Py_ssize_t n) noexcept:
    """The kind of a header field, from its name (n tchar bytes). Reads at most the first 17
    bytes of the name (_folded_kind relies on it)."""
    if n >= 12 and (s[0] | 0x20) == b'x' and _name_is(s, b"x-forwarded-", 12):
        if n == 15 and _name_is(s + 12, b"for", 3):
            return K_XFF
        return K_FORWARDING
    if n == 4:
        if _name_is(s, b"host", 4):
            return K_HOST
    elif n == 10:
        if _name_is(s, b"connection", 10):
            return K_CONNECTION
        if _name_is(s, b"keep-alive", 10):
            return K_HOP
    elif n == 17:
        if _name_is(s, b"transfer-encoding", 17):
            return K_TRANSFER_ENCODING
    elif n == 14:
        if _name_is(s, b"content-length", 14):
            return K_CONTENT_LENGTH
        if _name_is(s, b"http2-settings", 14):  # RFC 9113 3.2.1: this connection's only
            return K_HOP
    elif n == 9:
        if _name_is(s, b"forwarded", 9) or _name_is(s, b"x-real-ip", 9):
            return K_FORWARDING
    elif n == 7:
        if _name_is(s, b"upgrade", 7):
            return K_UPGRADE
        if _name_is(s, b"trailer", 7):
            return K_HOP
    elif n == 16:
        if _name_is(s, b"proxy-connection", 16):
            return K_HOP
    elif n == 6:
        if _name_is(s, b"expect", 6):
            return K_EXPECT
    elif n == 2:
        if _name_is(s, b"te", 2):
            return K_HOP
    elif n == 5:
        if _name_is(s, b"close", 5):
            return K_CLOSE
    return K_OTHER


cdef int _folded_kind(const unsigned char *s, Py_ssize_t n) noexcept:
    """The kind of a request field whose name (n tchar bytes) holds '_', when underscores are
    allowed: K_UNDERSCORE (dropped) if, with each '_' read as '-', it names a field the gateway
    acts on (X-Forwarded-*, X-Real-IP, Content-Length, Keep-Alive, HTTP2-Settings, ...), else
    K_OTHER. Rare (most names have no '_'), so a copy is fine."""
    cdef unsigned char folded[17]
    cdef Py_ssize_t i
    for i in range(n if n < 17 else 17):  # _classify reads no further
        folded[i] = b'-' if s[i] == b'_' else s[i]
    return K_OTHER if _classify(folded, n) == K_OTHER else K_UNDERSCORE


cdef void _connection_tokens(const unsigned char *p, Py_ssize_t a, Py_ssize_t ve,
                             Fields *f) noexcept:
    """Note the tokens of one Connection value p[a:ve]."""
    cdef Py_ssize_t b, ts, te
    cdef const unsigned char *q
    while True:
        b = _element(p, a, ve, &ts, &te)
        if te - ts == 5 and _lower_eq(p + ts, b"close", 5):
            f.conn_close = True
        elif te - ts == 10 and _lower_eq(p + ts, b"keep-alive", 10):
            f.conn_keep_alive = True
        elif te - ts == 7 and _lower_eq(p + ts, b"upgrade", 7):
            f.conn_upgrade = True
        elif te > ts:
            f.conn_other = True
        if b == ve:
            return
        a = b + 1


cdef int _expectations(const unsigned char *p, Line *lines, Py_ssize_t nlines) noexcept:
    """The elements of the Expect fields: bit 1 if one is 100-continue (any case), bit 2 if one
    is another expectation."""
    cdef Py_ssize_t k, a, b, ts, te, ve
    cdef const unsigned char *q
    cdef int found = 0
    for k in range(1, nlines):
        if lines[k].kind != K_EXPECT:
            continue
        a = lines[k].vstart
        ve = lines[k].vend
        while True:
            b = _element(p, a, ve, &ts, &te)
            if te - ts == 12 and _lower_eq(p + ts, b"100-continue", 12):
                found |= 1
            elif te > ts:
                found |= 2
            if b == ve:
                break
            a = b + 1
    return found


cdef bint _listed(const unsigned char *p, Line *lines, Py_ssize_t nlines,
                  Py_ssize_t k) noexcept:
    """Whether a Connection field lists the name of line k (ASCII case-insensitive)."""
    cdef Py_ssize_t c, a, b, ts, te, ve
    cdef Py_ssize_t ns = lines[k].start
    cdef Py_ssize_t nlen = lines[k].colon - ns
    cdef const unsigned char *q
    for c in range(1, nlines):
        if lines[c].kind != K_CONNECTION:
            continue
        a = lines[c].vstart
        ve = lines[c].vend
        while True:
            b = _element(p, a, ve, &ts, &te)
            if te - ts == nlen and _lower_eq(p + ts, p + ns, nlen):
                return True
            if b == ve:
                break
            a = b + 1
    return False


cdef object _error(const unsigned char *p, Py_ssize_t headlen, int cr_status, int status,
                   str reason):
    """The error for a complete head that failed a check: a bare CR anywhere comes first."""
    if _bare_cr(p, headlen) >= 0:
        return ParseError(cr_status, "bare CR in head")
    return ParseError(status, reason)


cdef Py_ssize_t _walk(const unsigned char *p, Py_ssize_t n, Line *lines, Py_ssize_t cap,
                      Py_ssize_t *nlines, int status) except -2:
    """Find the first CRLFCRLF; record the lines before it. Returns its index, or -1.

    Raises on a bare LF before it. Records at most ``cap`` lines but counts them all.
    """
    cdef Py_ssize_t pos = 0, j, count = 0
    cdef const unsigned char *q
    while pos < n:
        q = <const unsigned char *>memchr(p + pos, LF, n - pos)
        if q == NULL:
            break
        j = q - p
        if j == 0 or p[j - 1] != CR:
            raise ParseError(status, "bare LF line ending")
        if j == pos + 1 and pos > 0:  # an empty line right after a CRLF
            nlines[0] = count
            return j - 3
        if count < cap:
            lines[count].start = pos
            lines[count].end = j - 1
        count += 1
        pos = j + 1
    nlines[0] = count
    return -1


cdef int _incomplete(const unsigned char *p, Py_ssize_t n, Py_ssize_t first,
                     Py_ssize_t max_line, int line_status, Py_ssize_t max_section,
                     int section_status, int cr_status) except -1:
    """Checks on a head still arriving: fail early on what can already be judged."""
    # a trailing CR may begin the CRLF that ends a line, so it is not judged yet
    cdef Py_ssize_t tail = n - 1 if n > 0 and p[n - 1] == CR else n
    if _bare_cr(p, tail) >= 0:
        raise ParseError(cr_status, "bare CR in head")
    if first < 0 and tail > max_line:
        raise ParseError(line_status, "first line too long")
    if first > max_line:
        raise ParseError(line_status, "first line too long")
    if first >= 0 and tail - first - 2 > max_section:
        raise ParseError(section_status, "header section too large")
    return 0


cdef int _check_fields(const unsigned char *p, Py_ssize_t headlen, Line *lines,
                       Py_ssize_t nlines, int status, int underscores, Fields *f) except -1:
    """Validate every header line (in order), classify it and note what the gateway needs.
    ``underscores``: U_KEEP, U_DROP or U_ALLOW, for names that hold '_'."""
    cdef Py_ssize_t k, s, e, i, vs, ve
    cdef const unsigned char *q
    cdef int kind
    cdef bint underscore
    f.n_host = 0
    f.host = -1
    f.n_length = 0
    f.n_encoding = 0
    f.n_xff = 0
    f.n_upgrade = 0
    f.n_expect = 0
    f.conn_close = False
    f.conn_keep_alive = False
    f.conn_upgrade = False
    f.conn_other = False
    for k in range(1, nlines):
        s = lines[k].start
        e = lines[k].end
        if s == e:
            raise _error(p, headlen, status, status, "empty header line")
        if _ows(p[s]):
            raise _error(p, headlen, status, status, "obsolete line folding in header")
        i = s
        underscore = False
        while True:
            while NAME[p[i]]:  # stops at the CR at p[e] at the latest
                i += 1
            if p[i] != b'_':
                break
            underscore = True
            i += 1
        if i == e or p[i] != COLON or i == s:
            q = <const unsigned char *>memchr(p + s, COLON, e - s)
            if q == NULL or q == p + s:
                raise _error(p, headlen, status, status, "header line without a name and colon")
            raise _error(p, headlen, status, status, "invalid character in header name")
        lines[k].colon = i
        vs = i + 1
        ve = e
        while vs < ve and _ows(p[vs]):
            vs += 1
        while ve > vs and _ows(p[ve - 1]):
            ve -= 1
        if not _value_ok(p, vs, ve):
            raise _error(p, headlen, status, status, "invalid character in header value")
        lines[k].vstart = vs
        lines[k].vend = ve
        if underscore and underscores != U_KEEP:
            kind = K_UNDERSCORE if underscores == U_DROP else _folded_kind(p + s, i - s)
        else:
            kind = _classify(p + s, i - s)
        lines[k].kind = kind
        if kind == K_OTHER:
            pass
        elif kind == K_HOST:
            f.n_host += 1
            f.host = k
        elif kind == K_CONTENT_LENGTH:
            f.n_length += 1
        elif kind == K_TRANSFER_ENCODING:
            f.n_encoding += 1
        elif kind == K_CONNECTION:
            _connection_tokens(p, vs, ve, f)
        elif kind == K_UPGRADE:
            f.n_upgrade += 1
        elif kind == K_XFF:
            f.n_xff += 1
        elif kind == K_EXPECT:
            f.n_expect += 1
    return 0


cdef Py_ssize_t _codings(const unsigned char *p, Line *lines, Py_ssize_t nlines, int status,
                         Py_ssize_t *n_chunked, bint *last_chunked,
                         bint *last_params) except -1:
    """Check the Transfer-Encoding codings; returns how many there are. ``last_params``: the
    last coding has parameters."""
    cdef Py_ssize_t k, a, b, ts, te, ne, ve, count = 0
    cdef const unsigned char *q
    cdef bint is_chunked
    n_chunked[0] = 0
    last_chunked[0] = False
    last_params[0] = False
    for k in range(1, nlines):
        if lines[k].kind != K_TRANSFER_ENCODING:
            continue
        a = lines[k].vstart
        ve = lines[k].vend
        while True:
            b = _element(p, a, ve, &ts, &te)
            if te > ts:
                # a coding may carry parameters; its name is a token
                q = <const unsigned char *>memchr(p + ts, SEMI, te - ts)
                ne = te if q == NULL else q - p
                while ne > ts and _ows(p[ne - 1]):
                    ne -= 1
                if ne == ts or not _all(p, ts, ne, C_TCHAR):
                    raise ParseError(status, "invalid Transfer-Encoding")
                count += 1
                is_chunked = ne - ts == 7 and _lower_eq(p + ts, b"chunked", 7)
                if is_chunked:
                    n_chunked[0] += 1
                last_chunked[0] = is_chunked
                last_params[0] = q != NULL  # the ';' found above
            if b == ve:
                break
            a = b + 1
    return count


cdef long long _content_length(const unsigned char *p, Line *lines, Py_ssize_t nlines,
                               int status) except -2:
    cdef Py_ssize_t k, a, b, ts, te, ve, i
    cdef const unsigned char *q
    cdef long long result = -1, value
    for k in range(1, nlines):
        if lines[k].kind != K_CONTENT_LENGTH:
            continue
        a = lines[k].vstart
        ve = lines[k].vend
        while True:
            b = _element(p, a, ve, &ts, &te)
            if te == ts or te - ts > 18 or not _all(p, ts, te, C_DIGIT):
                raise ParseError(status, "invalid Content-Length")
            value = 0
            for i in range(ts, te):
                value = value * 10 + (p[i] - 48)
            if result >= 0 and value != result:
                raise ParseError(status, "conflicting Content-Length values")
            result = value
            if b == ve:
                break
            a = b + 1
    return result


cdef inline bint _protocol_ok(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """p[a:b] is an Upgrade protocol: protocol-name ["/" protocol-version], both tokens."""
    cdef const unsigned char *q = <const unsigned char *>memchr(p + a, b'/', b - a)
    cdef Py_ssize_t s = b if q == NULL else q - p
    if s == a or not _all(p, a, s, C_TCHAR):
        return False
    return s == b or (s + 1 < b and _all(p, s + 1, b, C_TCHAR))


cdef inline bint _is_http2(const unsigned char *p, Py_ssize_t a, Py_ssize_t b) noexcept:
    """The Upgrade protocol p[a:b] (checked) is h2c or h2 (HTTP/2, which TLS alone may
    select, RFC 9113 3.2), any case, with or without a version, or HTTP/2 (RFC 9110 7.8's
    spelling: HTTP/2, HTTP/2.0, ...)."""
    cdef Py_ssize_t n = 2
    if b - a >= 6 and _lower_eq(p + a, b"http/2", 6):
        return True
    if b - a < 2 or not _lower_eq(p + a, b"h2", 2):
        return False
    if b - a > 2 and (p[a + 2] | 0x20) == b'c':
        n = 3
    return b - a == n or p[a + n] == b'/'


cdef object _elements(const unsigned char *p, Line *lines, Py_ssize_t nlines, int kind,
                      bint protocols):
    """The list (RFC 9110 5.6.1) in the fields of one kind, spelled canonically: the elements
    without OWS around them, empty ones left out, joined by ", " (one allocation); None when
    it has no element. ``protocols``: each element must be an Upgrade protocol (else 400), and
    h2c and h2 are left out: HTTP/2 is never negotiated through the gateway (an HTTP/2
    connection to the upstream would carry requests the gateway never sees: h2c smuggling)."""
    cdef Py_ssize_t k, a, b, ts, te, ve, total = 0, count = 0
    cdef int step
    cdef bytes out = None
    cdef char *w = NULL
    for step in range(2):  # measure (and check), then copy
        for k in range(1, nlines):
            if lines[k].kind != kind:
                continue
            a = lines[k].vstart
            ve = lines[k].vend
            while True:
                b = _element(p, a, ve, &ts, &te)
                if te > ts and protocols:
                    if step == 0 and not _protocol_ok(p, ts, te):
                        raise ParseError(400, "invalid Upgrade")
                    if _is_http2(p, ts, te):
                        te = ts  # left out, as an empty element
                if te > ts:
                    if step == 0:
                        total += te - ts
                        count += 1
                    else:
                        if w != PyBytes_AS_STRING(out):
                            w[0] = b','
                            w[1] = b' '
                            w += 2
                        memcpy(w, p + ts, te - ts)
                        w += te - ts
                if b == ve:
                    break
                a = b + 1
        if step == 0:
            if count == 0:
                return None
            out = PyBytes_FromStringAndSize(NULL, total + 2 * (count - 1))
            w = PyBytes_AS_STRING(out)
    return out


cdef bytes _kept(const unsigned char *p, Line *lines, Py_ssize_t nlines):
    """The header lines marked ``keep``, each with its CRLF, copied into one bytes."""
    cdef Py_ssize_t k, total = 0, run_start = -1, run_end = -1
    for k in range(1, nlines):
        if lines[k].keep:
            total += lines[k].end + 2 - lines[k].start
    if total == 0:
        return EMPTY
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *w = PyBytes_AS_STRING(out)
    for k in range(1, nlines):
        if not lines[k].keep:
            continue
        if lines[k].start == run_end:  # contiguous with the previous kept line
            run_end = lines[k].end + 2
            continue
        if run_start >= 0:
            memcpy(w, p + run_start, run_end - run_start)
            w += run_end - run_start
        run_start = lines[k].start
        run_end = lines[k].end + 2
    memcpy(w, p + run_start, run_end - run_start)
    return out


cdef inline void _mark_listed(const unsigned char *p, Line *lines, Py_ssize_t nlines,
                              Fields *f) noexcept:
    """Drop the kept fields that Connection names (never Host: it may not be listed)."""
    cdef Py_ssize_t k
    for k in range(1, nlines):
        if not lines[k].keep:
            continue
        if lines[k].kind == K_CLOSE and f.conn_close:
            lines[k].keep = False
        elif f.conn_other and lines[k].kind != K_HOST and _listed(p, lines, nlines, k):
            lines[k].keep = False


cdef bytes _method(const unsigned char *p, Py_ssize_t n):
    if n == 3:
        if memcmp(p, b"GET", 3) == 0:
            return M_GET
        if memcmp(p, b"PUT", 3) == 0:
            return M_PUT
    elif n == 4:
        if memcmp(p, b"POST", 4) == 0:
            return M_POST
        if memcmp(p, b"HEAD", 4) == 0:
            return M_HEAD
    elif n == 6:
        if memcmp(p, b"DELETE", 6) == 0:
            return M_DELETE
    elif n == 5:
        if memcmp(p, b"PATCH", 5) == 0:
            return M_PATCH
    elif n == 7:
        if memcmp(p, b"OPTIONS", 7) == 0:
            return M_OPTIONS
    return PyBytes_FromStringAndSize(<const char *>p, n)


cdef object _find_header(bytes raw, object name):
    """First value of header ``name`` in ``raw`` (ASCII case-insensitive), or None."""
    if raw is None:
        return None
    if isinstance(name, str):
        raise TypeError("header name must be bytes")
    cdef Py_buffer view
    PyObject_GetBuffer(name, &view, PyBUF_SIMPLE)
    cdef const unsigned char *want = <const unsigned char *>view.buf
    cdef Py_ssize_t wlen = view.len
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(raw)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
    cdef const unsigned char *q
    cdef Py_ssize_t pos, e, colon, vs, ve
    try:
        q = <const unsigned char *>memchr(p, LF, n)
        if q == NULL:
            return None
        pos = q - p + 1
        while pos < n:
            q = <const unsigned char *>memchr(p + pos, LF, n - pos)
            if q == NULL:
                break
            e = q - p - 1  # the CR
            q = <const unsigned char *>memchr(p + pos, COLON, e - pos)
            if q != NULL:
                colon = q - p
                if colon > pos and colon - pos == wlen and _lower_eq(p + pos, want, wlen):
                    vs = colon + 1
                    ve = e
                    while vs < ve and _ows(p[vs]):
                        vs += 1
                    while ve > vs and _ows(p[ve - 1]):
                        ve -= 1
                    return PyBytes_FromStringAndSize(<const char *>p + vs, ve - vs)
            pos = e + 2
        return None
    finally:
        PyBuffer_Release(&view)


cdef class _Lines:
    """A growable C array of Line records, reused across the heads of one connection."""

    cdef Line *lines
    cdef Py_ssize_t cap

    def __dealloc__(self):
        PyMem_Free(self.lines)

    cdef int reserve(self, Py_ssize_t want) except -1:
        cdef Line *grown
        if want <= self.cap:
            return 0
        grown = <Line *>PyMem_Realloc(self.lines, want * sizeof(Line))
        if grown == NULL:
            raise MemoryError()
        self.lines = grown
        self.cap = want
        return 0


cdef inline Py_ssize_t _capacity(Py_ssize_t max_headers, Py_ssize_t n) noexcept:
    """Lines worth recording: the first line plus max_headers, and never more than n holds."""
    cdef Py_ssize_t most = n // 2 + 1  # every line ends in CRLF
    if max_headers < 0:
        return 1
    return most if max_headers >= most else max_headers + 1



# ---------------------------------------------------------------------------------------------
# building forwarded heads: one allocation, then copies

cdef inline Py_ssize_t _ndigits(long long v) noexcept:
    cdef Py_ssize_t n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef inline char *_put(char *w, const char *s, Py_ssize_t n) noexcept:
    memcpy(w, s, n)
    return w + n


cdef inline char *_put_bytes(char *w, bytes b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    memcpy(w, PyBytes_AS_STRING(b), n)
    return w + n


cdef inline char *_put_int(char *w, long long v, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i = n
    while i > 0:
        i -= 1
        w[i] = <char>(48 + v % 10)
        v //= 10
    return w + n


# ---------------------------------------------------------------------------------------------
# requests

cdef class RequestHead:
    """A parsed request head. ``kept`` holds the header lines forwarded unchanged."""

    cdef readonly bytes method
    cdef readonly bytes target
    cdef readonly bytes path
    cdef readonly int version
    cdef readonly bytes host
    cdef readonly long long content_length
    cdef readonly bint chunked
    cdef readonly bytes transfer_encoding
    cdef readonly bint keep_alive
    cdef readonly bytes upgrade
    cdef readonly bint expect_continue
    cdef readonly bytes x_forwarded_for
    cdef readonly Py_ssize_t head_length
    cdef readonly bytes kept
    cdef readonly bytes raw

    def header(self, name):
        """First value of header ``name`` (case-insensitive), for routing; None if absent."""
        return _find_header(self.raw, name)

    def forward(self, bytes tail not None, bytes host not None, bytes path=None,
                bytes kept=None, bytes forwarded_host=None):
        """The head to send upstream, in one piece: request line, Host, the kept lines,
        framing, Upgrade when upgrading, X-Forwarded-For (received values, then ``tail``, which
        starts with the client address and ends with "X-Forwarded-Host: "), then the forwarded
        host (``host`` unless given). A route's rewrites pass another ``path`` and ``kept``."""
        if path is None:
            path = self.path
        if kept is None:
            kept = self.kept
        if forwarded_host is None:
            forwarded_host = host
        cdef Py_ssize_t digits = 0
        cdef Py_ssize_t total = (PyBytes_GET_SIZE(self.method) + PyBytes_GET_SIZE(path)
                                 + PyBytes_GET_SIZE(host) + PyBytes_GET_SIZE(forwarded_host)
                                 + PyBytes_GET_SIZE(kept) + PyBytes_GET_SIZE(tail) + 41)
        # 41 = len(" ") + len(" HTTP/1.1\r\nHost: ") + len("\r\n")
        #      + len("X-Forwarded-For: ") + len("\r\n\r\n")
        if self.chunked:
            total += PyBytes_GET_SIZE(self.transfer_encoding) + 21
        elif self.content_length >= 0:
            digits = _ndigits(self.content_length)
            total += digits + 18
        if self.upgrade is not None:
            total += PyBytes_GET_SIZE(self.upgrade) + 32
        cdef bint xff = (self.x_forwarded_for is not None
                         and PyBytes_GET_SIZE(self.x_forwarded_for) > 0)
        if xff:
            total += PyBytes_GET_SIZE(self.x_forwarded_for) + 2
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef char *start = PyBytes_AS_STRING(out)
        cdef char *w = start
        w = _put_bytes(w, self.method)
        w = _put(w, " ", 1)
        w = _put_bytes(w, path)
        w = _put(w, " HTTP/1.1\r\nHost: ", 17)
        w = _put_bytes(w, host)
        w = _put(w, "\r\n", 2)
        w = _put_bytes(w, kept)
        if self.chunked:
            w = _put(w, "Transfer-Encoding: ", 19)
            w = _put_bytes(w, self.transfer_encoding)
            w = _put(w, "\r\n", 2)
        elif self.content_length >= 0:
            w = _put(w, "Content-Length: ", 16)
            w = _put_int(w, self.content_length, digits)
            w = _put(w, "\r\n", 2)
        if self.upgrade is not None:
            w = _put(w, "Connection: upgrade\r\nUpgrade: ", 30)
            w = _put_bytes(w, self.upgrade)
            w = _put(w, "\r\n", 2)
        w = _put(w, "X-Forwarded-For: ", 17)
        if xff:
            w = _put_bytes(w, self.x_forwarded_for)
            w = _put(w, ", ", 2)
        w = _put_bytes(w, tail)
        w = _put_bytes(w, forwarded_host)
        w = _put(w, "\r\n\r\n", 4)
        assert w - start == total
        return out


cdef class _HeadParser:
    """What both parsers share: accepting any buffer (bytes without a copy) and the reusable
    array of line records. Subclasses implement ``_parse`` over a pointer and a length."""

    cdef _Lines _lines

    def __cinit__(self):
        self._lines = _Lines()

    def parse(self, buf):
        """A head once ``buf`` holds a whole one, None before; ParseError if it is bad."""
        cdef Py_buffer view
        if type(buf) is bytes:
            return self._parse(buf, <const unsigned char *>PyBytes_AS_STRING(buf),
                               PyBytes_GET_SIZE(buf))
        try:
            PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE)
        except BufferError:  # not contiguous: copy it, as the twin does with any buffer
            buf = bytes(buf)
            return self._parse(buf, <const unsigned char *>PyBytes_AS_STRING(buf),
                               PyBytes_GET_SIZE(buf))
        try:
            return self._parse(None, <const unsigned char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef object _parse(self, object whole, const unsigned char *p, Py_ssize_t n):
        raise NotImplementedError


cdef class RequestParser(_HeadParser):
    """Parses request heads under the configured limits. ``underscores_in_headers``: header
    names holding '_' are forwarded (False, the default: dropped, as nginx does)."""

    cdef public Py_ssize_t max_request_line
    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_headers
    cdef public bint underscores_in_headers

    def __init__(self, Py_ssize_t max_request_line=8192, Py_ssize_t max_header_bytes=32768,
                 Py_ssize_t max_headers=100, bint underscores_in_headers=False):
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.underscores_in_headers = underscores_in_headers

    cdef object _parse(self, object whole, const unsigned char *p, Py_ssize_t n):
        # RFC 9112 2.2: empty lines (CRLF) before a request line are ignored, at the start of a
        # connection and between requests, but no more than a request line's worth of them.
        # head_length counts them (the caller slices its buffer there); raw does not.
        cdef Py_ssize_t skip = 0
        while skip + 1 < n and p[skip] == CR and p[skip + 1] == LF:
            skip += 2
            if skip > self.max_request_line:
                raise ParseError(400, "too many empty lines before the request line")
        if skip:
            p += skip
            n -= skip
        cdef Py_ssize_t cap = _capacity(self.max_headers, n)
        self._lines.reserve(cap)
        cdef Line *lines = self._lines.lines
        cdef Py_ssize_t nlines = 0
        cdef Py_ssize_t end = _walk(p, n, lines, cap, &nlines, 400)
        if end < 0:
            _incomplete(p, n, lines[0].end if nlines > 0 else -1, self.max_request_line, 414,
                        self.max_header_bytes, 431, 400)
            return None
        cdef Py_ssize_t headlen = end + 4
        cdef Py_ssize_t first = lines[0].end
        if first > self.max_request_line:
            raise _error(p, headlen, 400, 414, "first line too long")
        if end - first > self.max_header_bytes:
            raise _error(p, headlen, 400, 431, "header section too large")

        # request line: method SP request-target SP HTTP-version
        cdef const unsigned char *q = <const unsigned char *>memchr(p, SP, first)
        if q == NULL:
            raise _error(p, headlen, 400, 400, "malformed request line")
        cdef Py_ssize_t s1 = q - p
        q = <const unsigned char *>memchr(p + s1 + 1, SP, first - s1 - 1)
        if q == NULL:
            raise _error(p, headlen, 400, 400, "malformed request line")
        cdef Py_ssize_t s2 = q - p
        if memchr(p + s2 + 1, SP, first - s2 - 1) != NULL:
            raise _error(p, headlen, 400, 400, "malformed request line")
        if s1 == 0 or not _all(p, 0, s1, C_TCHAR):
            raise _error(p, headlen, 400, 400, "invalid method")
        if s2 == s1 + 1 or not _target_ok(p + s1 + 1, s2 - s1 - 1):
            raise _error(p, headlen, 400, 400, "invalid request target")
        cdef const unsigned char *v = p + s2 + 1
        cdef int version
        if first - s2 - 1 == 8 and memcmp(v, b"HTTP/1.", 7) == 0 and (v[7] == b'1' or
                                                                      v[7] == b'0'):
            version = 11 if v[7] == b'1' else 10
        elif (first - s2 - 1 == 8 and memcmp(v, b"HTTP/", 5) == 0 and CLS[v[5]] & C_DIGIT
              and v[6] == b'.' and CLS[v[7]] & C_DIGIT):
            raise _error(p, headlen, 400, 505, "HTTP version not supported")
        else:
            raise _error(p, headlen, 400, 400, "malformed HTTP version")

        if nlines - 1 > self.max_headers:
            raise _error(p, headlen, 400, 431, "too many headers")
        cdef Fields f
        _check_fields(p, headlen, lines, nlines, 400,
                      U_ALLOW if self.underscores_in_headers else U_DROP, &f)

        if f.n_host > 1:
            raise ParseError(400, "more than one Host header")
        cdef bytes host = None
        if f.n_host:
            # Host is forwarded as the gateway's own "Host: " line with the value without its
            # OWS; a '%' in it must be an escape, as in a target's authority
            # and it is uri-host [":" port] (RFC 9110 7.2: an invalid Host value gets 400)
            if not (_host_ok(p, lines[f.host].vstart, lines[f.host].vend)
                    and _host_shape_ok(p, lines[f.host].vstart, lines[f.host].vend)):
                raise ParseError(400, "invalid Host header")
        elif version == 11:  # RFC 9112 3.2, whatever the target's form
            raise ParseError(400, "missing Host header")
        if s1 == 7 and memcmp(p, b"CONNECT", 7) == 0:
            raise ParseError(405, "CONNECT is not supported by a reverse proxy")

        cdef const unsigned char *t = p + s1 + 1
        cdef Py_ssize_t tlen = s2 - s1 - 1
        cdef Py_ssize_t rest, cut, i
        cdef bytes target = PyBytes_FromStringAndSize(<const char *>t, tlen)
        cdef bytes path = target
        cdef bytes method = _method(p, s1)
        if t[0] != b'/':
            if ((tlen >= 7 and _lower_eq(t, b"http://", 7))
                    or (tlen >= 8 and _lower_eq(t, b"https://", 8))):
                rest = 7 if LOWER[t[4]] == b':' else 8
                cut = _authority_end(t, rest, tlen)
                if (cut == rest or not _all(t, rest, cut, C_HOST) or t[rest] == b':'
                        or not _host_shape_ok(t, rest, cut)):
                    raise ParseError(400, "invalid authority in absolute-form target")
                host = PyBytes_FromStringAndSize(<const char *>t + rest, cut - rest)
                if cut < tlen and t[cut] == b'/':
                    path = PyBytes_FromStringAndSize(<const char *>t + cut, tlen - cut)
                else:
                    path = PyBytes_FromStringAndSize(NULL, tlen - cut + 1)
                    PyBytes_AS_STRING(path)[0] = b'/'
                    memcpy(PyBytes_AS_STRING(path) + 1, t + cut, tlen - cut)
            elif tlen == 1 and t[0] == b'*' and s1 == 7 and memcmp(p, b"OPTIONS", 7) == 0:
                pass
            else:
                raise ParseError(400, "invalid request target")
        if host is None:
            if f.n_host:
                host = PyBytes_FromStringAndSize(<const char *>p + lines[f.host].vstart,
                                                 lines[f.host].vend - lines[f.host].vstart)
            else:
                host = EMPTY

        cdef bint chunked = False
        cdef bytes transfer_encoding = None
        cdef long long content_length = -1
        cdef Py_ssize_t n_codings, n_chunked
        cdef bint last_chunked, last_params
        if f.n_encoding:
            if f.n_length:
                raise ParseError(400, "both Content-Length and Transfer-Encoding")
            if version == 10:
                raise ParseError(400, "Transfer-Encoding in an HTTP/1.0 request")
            n_codings = _codings(p, lines, nlines, 400, &n_chunked, &last_chunked, &last_params)
            if n_codings == 0:
                raise ParseError(400, "empty Transfer-Encoding")
            if not last_chunked or n_chunked != 1:
                raise ParseError(400, "Transfer-Encoding does not end in chunked")
            # RFC 9112 7: chunked has no parameters. RFC 9112 6.1: a coding the gateway does
            # not implement gets 501 (it only understands chunked, as nginx). So the list,
            # however spelled (",chunked", two fields), is forwarded as exactly "chunked".
            if last_params:
                raise ParseError(400, "parameters on the chunked transfer coding")
            if n_codings != 1:
                raise ParseError(501, "unsupported transfer coding")
            chunked = True
            transfer_encoding = CHUNKED
        elif f.n_length:
            content_length = _content_length(p, lines, nlines, 400)

        # Upgrade counts only when Connection lists it; then the protocols are forwarded in the
        # gateway's spelling (all fields, no empty elements), never the client's lines. In an
        # HTTP/1.0 request it is ignored (RFC 9110 7.8).
        cdef bytes upgrade = None
        if f.n_upgrade and f.conn_upgrade and version == 11:
            upgrade = _elements(p, lines, nlines, K_UPGRADE, True)
        # Expect is hop-by-hop (RFC 9110 10.1.1) and never forwarded. 100-continue, in any case,
        # repeated or among empty elements, is the gateway's own (answered here; ignored in
        # HTTP/1.0). Any other expectation, alone or not, is one the gateway cannot meet: 417.
        cdef int expect = _expectations(p, lines, nlines) if f.n_expect else 0
        if expect & 2:
            raise ParseError(417, "unsupported expectation")
        cdef bint saw_continue = expect == 1
        cdef bytes forwarded_for = None
        if f.n_xff:
            forwarded_for = _elements(p, lines, nlines, K_XFF, False)
        # forwarded as received: the fields the gateway does not act on (a name with '_' only
        # when allowed, and never one that reads as a gateway's field)
        cdef int kind
        for i in range(1, nlines):
            kind = lines[i].kind
            lines[i].keep = kind == K_OTHER or kind == K_CLOSE
        if f.conn_close or f.conn_other:
            _mark_listed(p, lines, nlines, &f)
        cdef bytes kept = _kept(p, lines, nlines)
        cdef bytes raw = whole if whole is not None and skip == 0 and headlen == n else \
            PyBytes_FromStringAndSize(<const char *>p, headlen)

        # The head is made last: its allocation may run the garbage collector, and with it
        # arbitrary code, so nothing reads the line records after this point.
        cdef RequestHead head = RequestHead.__new__(RequestHead)
        head.method = method
        head.target = target
        head.path = path
        head.version = version
        head.host = host
        head.content_length = content_length
        head.chunked = chunked
        head.transfer_encoding = transfer_encoding
        if version == 11:
            head.keep_alive = not f.conn_close
        else:
            head.keep_alive = f.conn_keep_alive and not f.conn_close
        head.upgrade = upgrade
        head.expect_continue = saw_continue and version == 11
        head.x_forwarded_for = forwarded_for
        head.head_length = skip + headlen
        head.kept = kept
        head.raw = raw
        return head


# ---------------------------------------------------------------------------------------------
# responses

cdef class ResponseHead:
    """A parsed response head. ``kept`` holds the header lines forwarded unchanged."""

    cdef readonly int status
    cdef readonly int version
    cdef readonly bytes reason
    cdef readonly long long content_length
    cdef readonly bint chunked
    cdef readonly bytes transfer_encoding
    cdef readonly bint keep_alive
    cdef readonly bytes upgrade
    cdef readonly Py_ssize_t head_length
    cdef readonly bytes kept
    cdef readonly bytes raw

    def header(self, name):
        """First value of header ``name`` (case-insensitive); None if absent."""
        return _find_header(self.raw, name)

    def forward(self, bytes extra not None, bint te_allowed, bint no_body, bytes kept=None):
        """The head to send the client: status line (as HTTP/1.1), the kept lines (or
        ``kept``, when a route rewrites them), framing, then ``extra`` (e.g. a Connection
        line). ``te_allowed`` is False for HTTP/1.0 clients: they never get Transfer-Encoding."""
        if kept is None:
            kept = self.kept
        cdef Py_ssize_t digits = 0
        cdef int framing = 0  # 1: Transfer-Encoding, 2: Content-Length
        cdef Py_ssize_t total = (PyBytes_GET_SIZE(self.reason) + PyBytes_GET_SIZE(kept)
                                 + PyBytes_GET_SIZE(extra) + 17)
        # 17 = len("HTTP/1.1 ") + 3 digits + len(" ") + len("\r\n") + len("\r\n")
        if (self.transfer_encoding is not None and not te_allowed) or self.status == 204:
            framing = 0  # a 204 has neither (RFC 9110 8.6, RFC 9112 6.1), whatever it said
        elif self.chunked or (self.transfer_encoding is not None and not no_body):
            framing = 1
            total += PyBytes_GET_SIZE(self.transfer_encoding) + 21
        elif self.content_length >= 0:
            framing = 2
            digits = _ndigits(self.content_length)
            total += digits + 18
        cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
        cdef char *start = PyBytes_AS_STRING(out)
        cdef char *w = start
        w = _put(w, "HTTP/1.1 ", 9)
        w = _put_int(w, self.status, 3)
        w = _put(w, " ", 1)
        w = _put_bytes(w, self.reason)
        w = _put(w, "\r\n", 2)
        w = _put_bytes(w, kept)
        if framing == 1:
            w = _put(w, "Transfer-Encoding: ", 19)
            w = _put_bytes(w, self.transfer_encoding)
            w = _put(w, "\r\n", 2)
        elif framing == 2:
            w = _put(w, "Content-Length: ", 16)
            w = _put_int(w, self.content_length, digits)
            w = _put(w, "\r\n", 2)
        w = _put_bytes(w, extra)
        w = _put(w, "\r\n", 2)
        assert w - start == total
        return out


cdef class ResponseParser(_HeadParser):
    """Parses response heads from an upstream; errors carry status 502."""

    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_headers

    def __init__(self, Py_ssize_t max_header_bytes=65536, Py_ssize_t max_headers=200):
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers

    cdef object _parse(self, object whole, const unsigned char *p, Py_ssize_t n):
        cdef Py_ssize_t cap = _capacity(self.max_headers, n)
        self._lines.reserve(cap)
        cdef Line *lines = self._lines.lines
        cdef Py_ssize_t nlines = 0
        cdef Py_ssize_t end = _walk(p, n, lines, cap, &nlines, 502)
        if end < 0:
            _incomplete(p, n, lines[0].end if nlines > 0 else -1, MAX_RESPONSE_LINE, 502,
                        self.max_header_bytes, 502, 502)
            return None
        cdef Py_ssize_t headlen = end + 4
        cdef Py_ssize_t first = lines[0].end
        if first > MAX_RESPONSE_LINE:
            raise _error(p, headlen, 502, 502, "first line too long")
        if end - first > self.max_header_bytes:
            raise _error(p, headlen, 502, 502, "response header section too large")

        # status line: HTTP-version SP 3DIGIT [SP reason-phrase]
        cdef int version
        if first >= 8 and memcmp(p, b"HTTP/1.", 7) == 0 and (p[7] == b'1' or p[7] == b'0'):
            version = 11 if p[7] == b'1' else 10
        else:
            raise _error(p, headlen, 502, 502, "malformed status line")
        if (first < 12 or p[8] != SP or not _all(p, 9, 12, C_DIGIT) or p[9] == b'0'
                or (first > 12 and p[12] != SP)):
            raise _error(p, headlen, 502, 502, "malformed status line")
        cdef int status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
        if status < 100 or status > 599:
            raise _error(p, headlen, 502, 502, "status code out of range")
        if first > 13 and not _value_ok(p, 13, first):
            raise _error(p, headlen, 502, 502, "invalid character in reason phrase")

        if nlines - 1 > self.max_headers:
            raise _error(p, headlen, 502, 502, "too many headers")
        cdef Fields f
        _check_fields(p, headlen, lines, nlines, 502, U_KEEP, &f)

        cdef bint keep_alive
        if version == 11:
            keep_alive = not f.conn_close
        else:
            keep_alive = f.conn_keep_alive and not f.conn_close
        cdef bint chunked = False
        cdef bytes transfer_encoding = None
        cdef long long content_length = -1
        cdef Py_ssize_t n_chunked
        cdef bint last_chunked, last_params
        if f.n_encoding:
            if f.n_length:
                raise ParseError(502, "both Content-Length and Transfer-Encoding in response")
            if _codings(p, lines, nlines, 502, &n_chunked, &last_chunked, &last_params) == 0:
                raise ParseError(502, "empty Transfer-Encoding")
            # forwarded in canonical spelling: the elements, without empty ones or OWS around
            # them, joined by ", " (",chunked" -> "chunked", "gzip ,, chunked" -> "gzip, chunked")
            transfer_encoding = _elements(p, lines, nlines, K_TRANSFER_ENCODING, False)
            if last_chunked:
                if n_chunked != 1:
                    raise ParseError(502, "chunked applied twice")
                chunked = True
            else:
                keep_alive = False  # close-delimited
            if version == 10:  # RFC 9112 6.1: HTTP/1.0 with Transfer-Encoding is faulty
                keep_alive = False  # framing: take this message, then close
        elif f.n_length:
            content_length = _content_length(p, lines, nlines, 502)

        cdef Py_ssize_t i
        cdef int kind
        for i in range(1, nlines):
            kind = lines[i].kind
            lines[i].keep = not (kind == K_CONNECTION or kind == K_HOP or kind == K_UPGRADE
                                 or kind == K_CONTENT_LENGTH or kind == K_TRANSFER_ENCODING)
        if f.conn_close or f.conn_other:
            _mark_listed(p, lines, nlines, &f)
        # the protocols the client is told about after a 101, in the same canonical spelling
        # (not validated: the gateway relays them, it does not act on them)
        cdef bytes upgrade = None
        if f.n_upgrade:
            upgrade = _elements(p, lines, nlines, K_UPGRADE, False)
        cdef bytes reason = EMPTY
        if first > 13:
            reason = PyBytes_FromStringAndSize(<const char *>p + 13, first - 13)
        cdef bytes kept = _kept(p, lines, nlines)
        cdef bytes raw = whole if whole is not None and headlen == n else \
            PyBytes_FromStringAndSize(<const char *>p, headlen)

        cdef ResponseHead head = ResponseHead.__new__(ResponseHead)  # last: see RequestParser
        head.status = status
        head.version = version
        head.reason = reason
        head.content_length = content_length
        head.chunked = chunked
        head.transfer_encoding = transfer_encoding
        head.keep_alive = keep_alive
        head.upgrade = upgrade
        head.head_length = headlen
        head.kept = kept
        head.raw = raw
        return head


# ---------------------------------------------------------------------------------------------
# chunked bodies

cdef enum:
    S_SIZE
    S_SIZE_LF
    S_DATA
    S_DATA_CR
    S_DATA_LF
    S_TRAILER
    S_TRAILER_LF
    S_DONE
    # the extensions of a chunk-size line (RFC 9112 7.1.1), all numbered after S_DONE:
    # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
    S_SIZE_WS        # BWS after the size: only ';' may follow
    S_EXT_PRE_NAME   # after ';' (and BWS): a name must follow
    S_EXT_NAME       # in chunk-ext-name (token)
    S_EXT_NAME_WS    # BWS after a name: '=' or ';' must follow
    S_EXT_PRE_VALUE  # after '=' (and BWS): a token or a quoted-string must follow
    S_EXT_TOKEN      # in a token value
    S_EXT_QUOTED     # in a quoted-string
    S_EXT_QPAIR      # after a backslash in a quoted-string
    S_EXT_VALUE_END  # after a value: ';', BWS or the CRLF
    S_EXT_VALUE_WS   # BWS after a value: ';' must follow


cdef int _extension_step(int state, unsigned char c) except -1:
    """One byte of a chunk extension: the next state, or ParseError(400)."""
    if state == S_EXT_NAME or state == S_EXT_TOKEN:
        if CLS[c] & C_TCHAR:
            return state
        if state == S_EXT_NAME:
            if _ows(c):
                return S_EXT_NAME_WS
            if c == EQUALS:
                return S_EXT_PRE_VALUE
        state = S_EXT_VALUE_END  # a name without a value, or a token value, has ended
    if state == S_EXT_QUOTED:
        if c == DQUOTE:
            return S_EXT_VALUE_END
        if c == BACKSLASH:
            return S_EXT_QPAIR
        if CLS[c] & C_QDTEXT:
            return S_EXT_QUOTED
        raise ParseError(400, "invalid quoted string in chunk extension")
    if state == S_EXT_QPAIR:
        if CLS[c] & C_VALUE:  # HTAB / SP / VCHAR / obs-text
            return S_EXT_QUOTED
        raise ParseError(400, "invalid quoted string in chunk extension")
    if state == S_EXT_VALUE_END:
        if c == SEMI:
            return S_EXT_PRE_NAME
        if c == CR:
            return S_SIZE_LF
        if _ows(c):
            return S_EXT_VALUE_WS
    elif state == S_EXT_PRE_NAME:
        if CLS[c] & C_TCHAR:
            return S_EXT_NAME
        if _ows(c):
            return state
        if c == CR or c == SEMI or c == EQUALS:
            raise ParseError(400, "empty chunk extension name")
    elif state == S_EXT_PRE_VALUE:
        if CLS[c] & C_TCHAR:
            return S_EXT_TOKEN
        if c == DQUOTE:
            return S_EXT_QUOTED
        if _ows(c):
            return state
        if c == CR or c == SEMI:
            raise ParseError(400, "empty chunk extension value")
    elif state == S_SIZE_WS:
        if c == SEMI:
            return S_EXT_PRE_NAME
        if _ows(c):
            return state
        raise ParseError(400, "invalid chunk size")
    else:  # S_EXT_NAME_WS, S_EXT_VALUE_WS: BWS must lead to what follows it
        if _ows(c):
            return state
        if c == SEMI:
            return S_EXT_PRE_NAME
        if c == EQUALS and state == S_EXT_NAME_WS:
            return S_EXT_PRE_VALUE
    raise ParseError(400, "invalid character in chunk extension")


cdef int _append(bytearray out, const unsigned char *p, Py_ssize_t n) except -1:
    """Append p[:n] to ``out`` (one resize, one copy)."""
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(out)
    PyByteArray_Resize(out, size + n)
    memcpy(PyByteArray_AS_STRING(out) + size, p, n)
    return 0


cdef class ChunkedReader:
    """Validates a chunked body as it passes (RFC 9112 7.1), chunk extensions to their grammar
    (7.1.1), without copying data.

    ``feed(data, start=0, out=None)`` returns the index in ``data`` just past the end of the
    body, or -1 when all of ``data[start:]`` belongs to the body and more is expected. ``done``
    becomes True at the end. Raises ParseError(400) on bad framing; callers remap for responses.

    ``out``, a bytearray (not ``data`` itself), receives the payload in the same pass: the chunk
    data of ``data[start:]``, without sizes, extensions, CRLFs or trailers, which is what an
    HTTP/1.0 client must be sent. On a ParseError it holds the payload before the fault.

    ``trailer_bytes`` counts the trailer section seen so far (after the last-chunk line, to
    the final CRLF included: 2 for a body without trailer fields), so that a caller can
    forward a body without its trailers.
    """

    cdef int state
    cdef int digits
    cdef long long remaining
    cdef Py_ssize_t line_len
    cdef readonly Py_ssize_t trailer_bytes
    cdef bint colon  # the current trailer line has had its name and colon
    cdef readonly bint done

    def feed(self, data, Py_ssize_t start=0, bytearray out=None):
        cdef Py_buffer view
        if start < 0:
            raise ValueError("start must not be negative")
        if type(data) is bytes:
            return self._feed(<const unsigned char *>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), start, out)
        try:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        except BufferError:  # not contiguous
            data = bytes(data)
            return self._feed(<const unsigned char *>PyBytes_AS_STRING(data),
                              PyBytes_GET_SIZE(data), start, out)
        try:
            return self._feed(<const unsigned char *>view.buf, view.len, start, out)
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _feed(self, const unsigned char *p, Py_ssize_t n, Py_ssize_t i,
                          bytearray out) except -2:
        cdef int state = self.state
        cdef long long remaining = self.remaining
        cdef Py_ssize_t take
        cdef unsigned char c
        cdef signed char h
        while i < n:
            if state == S_DATA:
                take = n - i
                if remaining < take:
                    take = <Py_ssize_t>remaining
                if out is not None:
                    _append(out, p + i, take)
                i += take
                remaining -= take
                if remaining == 0:
                    state = S_DATA_CR
                continue
            c = p[i]
            i += 1
            if state == S_SIZE:
                h = HEXVAL[c]
                if h >= 0:
                    self.digits += 1
                    if self.digits > 15:
                        raise ParseError(400, "chunk size too large")
                    remaining = remaining * 16 + h
                elif c == SEMI and self.digits:  # ';' starts a chunk extension
                    state = S_EXT_PRE_NAME
                elif _ows(c) and self.digits:  # BWS before a ';'
                    state = S_SIZE_WS
                elif c == CR and self.digits:
                    state = S_SIZE_LF
                else:
                    raise ParseError(400, "invalid chunk size")
                self.line_len += 1
            elif state > S_DONE:  # in the extensions of a chunk-size line
                self.line_len += 1
                if self.line_len > MAX_CHUNK_LINE:
                    raise ParseError(400, "chunk extension too long")
                state = _extension_step(state, c)
            elif state == S_SIZE_LF:
                if c != LF:
                    raise ParseError(400, "invalid chunk size line ending")
                self.digits = 0
                self.line_len = 0
                state = S_TRAILER if remaining == 0 else S_DATA
            elif state == S_DATA_CR:
                if c != CR:
                    raise ParseError(400, "chunk data longer than its size")
                state = S_DATA_LF
            elif state == S_DATA_LF:
                if c != LF:
                    raise ParseError(400, "chunk data not followed by CRLF")
                state = S_SIZE
            elif state == S_TRAILER:
                self.trailer_bytes += 1
                if self.trailer_bytes > MAX_TRAILER:
                    raise ParseError(400, "chunked trailer too large")
                if c == CR:
                    if self.line_len and not self.colon:
                        raise ParseError(400, "chunked trailer line without a colon")
                    state = S_TRAILER_LF
                elif c == LF or not (CLS[c] & C_VALUE):
                    raise ParseError(400, "invalid character in chunked trailer")
                else:
                    # a trailer line is a field line: token ":" value
                    if not self.colon:
                        if c == COLON and self.line_len:
                            self.colon = True
                        elif not (CLS[c] & C_TCHAR):
                            raise ParseError(400, "invalid chunked trailer field name")
                    self.line_len += 1
            elif state == S_TRAILER_LF:
                self.trailer_bytes += 1
                if c != LF:
                    raise ParseError(400, "bare CR in chunked trailer")
                if self.line_len == 0:
                    self.state = S_DONE
                    self.remaining = remaining
                    self.done = True
                    return i
                self.line_len = 0
                self.colon = False
                state = S_TRAILER
            else:  # S_DONE
                raise ParseError(400, "data after the end of a chunked body")
        self.state = state
        self.remaining = remaining
        return -1
