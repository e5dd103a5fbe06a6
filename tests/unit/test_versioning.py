"""API version extraction: path, header and Accept sources, precedence, default, deprecation
headers, strip_path; Accept parsing edge cases; arbitrary bytes never crash it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgw.versioning import (
    NO_VERSION,
    Version,
    VersionError,
    Versioning,
    VersioningSpec,
    http_date,
    parse_accept,
)

ACCEPT = "application/vnd.example.v{version}+json"
MT = "application/vnd.example.v"  # the template's text before {version}


class Head:
    """The two things extract reads from a RequestHead."""

    def __init__(self, path: bytes = b"/", **headers: bytes) -> None:
        self.path = path
        self._headers = {k.replace("_", "-").lower().encode(): v for k, v in headers.items()}

    def header(self, name: bytes) -> bytes | None:
        return self._headers.get(name.lower())


def full(**kw) -> Versioning:
    base = dict(header="X-API-Version", accept=ACCEPT, path="/v{version}/")
    base.update(kw)
    return Versioning(VersioningSpec(**base))


# -- each source ---------------------------------------------------------------------------


def test_header_source():
    v = full()
    assert v.extract(Head(x_api_version=b"2")) == ("2", "header")
    assert v.extract(Head(x_api_version=b"2024-01-01")) == Version("2024-01-01", "header")
    assert v.extract(Head(x_api_version=b"beta")) == ("beta", "header")


def test_header_name_is_case_insensitive_with_the_real_parser(parser_impl):
    head = parser_impl.RequestParser().parse(
        b"GET /users HTTP/1.1\r\nHost: a\r\nx-api-VERSION:  3 \r\n\r\n"
    )
    assert full().extract(head) == ("3", "header")


@pytest.mark.parametrize("value", [b"2 3", b"2,3", b"v/2", b"\xff", b"2;q=1", b"-2", b"." ,
                                   b"x" * 33, b'"2"'])
def test_malformed_header_is_rejected(value):
    with pytest.raises(VersionError) as err:
        full().extract(Head(x_api_version=value))
    assert err.value.source == "header"
    assert "X-API-Version" in err.value.message


def test_empty_header_is_absent():
    assert full(default="1").extract(Head(x_api_version=b"")) == ("1", "default")


def test_accept_source():
    v = full()
    assert v.extract(Head(accept=b"application/vnd.example.v2+json")) == ("2", "accept")
    assert v.extract(Head(accept=b"application/json")) == NO_VERSION
    assert v.extract(Head(accept=b"*/*")) == NO_VERSION


def test_accept_with_the_real_parser(parser_impl):
    head = parser_impl.RequestParser().parse(
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: text/html;q=0.9, "
        b"Application/Vnd.Example.V7+JSON; charset=utf-8; q=0.8\r\n\r\n"
    )
    assert full().extract(head) == ("7", "accept")


def test_accept_result_is_cached_and_stays_right():
    v = full()
    head = Head(accept=b"application/vnd.example.v2+json;q=0.1, application/vnd.example.v3+json")
    assert v.extract(head) == ("3", "accept")
    assert v.extract(head) == ("3", "accept")
    miss = Head(accept=b"application/vnd.example.v2+json;q=0")
    assert v.extract(miss) == NO_VERSION
    assert v.extract(miss) == NO_VERSION


@pytest.mark.parametrize(
    "path, version",
    [
        (b"/v2/users", "2"),
        (b"/v2/", "2"),
        (b"/v2", "2"),  # the trailing "/" of the template is optional at the end of the path
        (b"/v2?x=1", "2"),
        (b"/v2.1/users", "2.1"),
        (b"/v1beta1/users", "1beta1"),
        (b"/v2x/users", "2x"),  # "2x" is a valid version: the token rule does not stop it
        (b"/videos/1", None),  # a path version starts with a digit: not version "ideos"
        (b"/vendors", None),
        (b"/v/users", None),
        (b"/v2~/users", None),  # "~" is not a version character and not a segment boundary
        (b"/v2%2F/users", None),  # no percent-decoding
        (b"/V2/users", None),  # paths are case-sensitive
        (b"/users/v2/", None),  # only at the start
        (b"/v" + b"1" * 32 + b"/", "1" * 32),
        (b"/v" + b"1" * 33 + b"/", None),
    ],
)
def test_path_source(path, version):
    expected = NO_VERSION if version is None else (version, "path")
    assert full().extract(Head(path)) == expected


@pytest.mark.parametrize(
    "template, path, version, stripped",
    [
        ("/v{version}/", b"/v2/users?x", "2", b"/users?x"),
        ("/v{version}/", b"/v2/", "2", b"/"),
        ("/v{version}/", b"/v2", "2", b"/"),
        ("/v{version}/", b"/v2?x=1", "2", b"/?x=1"),
        ("/v{version}/", b"/videos/1", None, b"/videos/1"),
        ("/v{version}", b"/v3/a", "3", b"/a"),
        ("/{version}/", b"/2024-01-01/a", "2024-01-01", b"/a"),
        ("/{version}/", b"/users/2", None, b"/users/2"),
        ("/api/v{version}/", b"/api/v2/users", "2", b"/api/users"),
        ("/api/v{version}/", b"/api/v2", "2", b"/api"),
        ("/api/v{version}/", b"/api/v2?q", "2", b"/api?q"),
        ("/v{version}-api/", b"/v2-api/x", "2", b"/x"),
        ("/v{version}-api/", b"/v2-apix/x", None, b"/v2-apix/x"),
        ("/api/{version}/x/", b"/api/2/x/y", "2", b"/api/x/y"),
        ("/api/{version}/x/", b"/api/2/xy", None, b"/api/2/xy"),
    ],
)
def test_path_templates_and_strip_path(template, path, version, stripped):
    v = Versioning(VersioningSpec(path=template))
    assert v.extract(Head(path)) == (NO_VERSION if version is None else (version, "path"))
    assert v.strip_path(path) == stripped


def test_strip_path_without_a_path_template_is_identity():
    assert Versioning(VersioningSpec(header="X-V")).strip_path(b"/v2/x") == b"/v2/x"


# -- precedence and default ------------------------------------------------------------------

ALL = Head(b"/v1/x", x_api_version=b"2", accept=b"application/vnd.example.v3+json")


@pytest.mark.parametrize(
    "precedence, expected",
    [
        (("path", "header", "accept"), ("1", "path")),
        (("header", "path", "accept"), ("2", "header")),
        (("accept", "header", "path"), ("3", "accept")),
        (("accept", "path", "header"), ("3", "accept")),
    ],
)
def test_precedence(precedence, expected):
    assert full(precedence=precedence).extract(ALL) == expected


def test_first_source_with_a_version_wins_even_if_later():
    v = full(precedence=("path", "header", "accept"))
    assert v.extract(Head(b"/x", accept=b"application/vnd.example.v3+json")) == ("3", "accept")
    assert v.extract(Head(b"/x", x_api_version=b"2",
                          accept=b"application/vnd.example.v3+json")) == ("2", "header")


def test_malformed_header_rejects_only_when_it_is_reached():
    bad = Head(b"/v1/x", x_api_version=b"2 2")
    assert full().extract(bad) == ("1", "path")
    with pytest.raises(VersionError):
        full(precedence=("header", "path", "accept")).extract(bad)


def test_malformed_accept_and_path_fall_through():
    v = full(default="1")
    head = Head(b"/v2~/x", accept=b"application/vnd.example.v@+json, text/html;q=x")
    assert v.extract(head) == ("1", "default")


def test_default_and_no_version():
    assert full(default="1").extract(Head(b"/users")) == ("1", "default")
    assert full().extract(Head(b"/users")) == NO_VERSION
    assert full().extract(Head(b"/users")).value is None
    assert Versioning(VersioningSpec()).extract(ALL) == NO_VERSION
    assert Versioning(VersioningSpec(default="9")).extract(ALL) == ("9", "default")


def test_unconfigured_sources_in_precedence_are_skipped():
    v = Versioning(VersioningSpec(header="X-API-Version"))
    assert v.extract(ALL) == ("2", "header")


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(header="X API"), "header name"),
        (dict(accept="application/vnd.example+json"), "{version}"),
        (dict(accept="application/{version}"), "literal"),
        (dict(accept="{version}/json"), "literal"),
        (dict(accept="application/vnd.v{version}+json; charset=utf-8"), "media type"),
        (dict(accept="vnd.v{version}"), "media type"),
        (dict(path="v{version}/"), "start with '/'"),
        (dict(path="/v{version}/{version}"), "once"),
        (dict(path="/v{version}?x"), "not allowed"),
        (dict(default="1 2"), "not a valid version"),
        (dict(precedence=("path", "cookie")), "not one of"),
        (dict(precedence=("path", "path")), "twice"),
        (dict(header="X-V", precedence=("path",)), "not listed in precedence"),
        (dict(deprecated={"1": "2027-6-30"}), "not a date"),
        (dict(deprecated={"1": "2027-02-30"}), "calendar"),
        (dict(deprecated={"v 1": None}), "not a valid version"),
        (dict(deprecated={"1": None}, deprecated_since={"2": "2026-01-01"}), "not listed"),
        (dict(deprecated={"1": "2026-01-01"}, deprecated_since={"1": "2027-01-01"}), "before"),
    ],
)
def test_bad_specs_are_refused(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Versioning(VersioningSpec(**kw))


def test_equal_specs_are_equal_and_hashable():
    a = VersioningSpec(header="X-V", deprecated={"1": None})
    b = VersioningSpec(header="X-V", deprecated={"1": None})
    assert a == b and hash(a) == hash(b)


# -- deprecation headers ---------------------------------------------------------------------


def test_deprecation_with_sunset_and_since():
    v = Versioning(VersioningSpec(
        header="X-V",
        deprecated={"1": "2027-06-30", "2": None},
        deprecated_since={"1": "2026-06-30"},
    ))
    assert v.response_headers("1") == (
        b"Deprecation: @1782777600\r\nSunset: Wed, 30 Jun 2027 00:00:00 GMT\r\n"
    )
    # no deprecation date given: an sf-date in the past (the epoch) means "deprecated now"
    assert v.response_headers("2") == b"Deprecation: @0\r\n"
    assert v.response_headers("3") == b""
    assert v.response_headers(None) == b""


def test_deprecation_without_since_keeps_the_sunset():
    v = Versioning(VersioningSpec(default="1", deprecated={"1": "2027-06-30"}))
    assert v.response_headers("1") == b"Deprecation: @0\r\nSunset: Wed, 30 Jun 2027 00:00:00 GMT\r\n"


@pytest.mark.parametrize(
    "date, expected",
    [
        ("2027-06-30", b"Wed, 30 Jun 2027 00:00:00 GMT"),
        ("2024-02-29", b"Thu, 29 Feb 2024 00:00:00 GMT"),
        ("1970-01-01", b"Thu, 01 Jan 1970 00:00:00 GMT"),
        ("2000-12-31", b"Sun, 31 Dec 2000 00:00:00 GMT"),
    ],
)
def test_http_date(date, expected):
    assert http_date(date) == expected


# -- Accept parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept, version",
    [
        ("application/vnd.example.v2+json", "2"),
        ("application/vnd.example.v2+json;q=0", None),  # q=0: not acceptable
        ("application/vnd.example.v2+json;q=0.000", None),
        ("application/vnd.example.v2+json;q=0.001", "2"),
        # several ranges: the highest q wins, ties go to the first
        ("application/vnd.example.v2+json;q=0.5, application/vnd.example.v3+json;q=0.9", "3"),
        ("application/vnd.example.v2+json;q=0.9, application/vnd.example.v3+json;q=0.5", "2"),
        ("application/vnd.example.v2+json;q=0.5, application/vnd.example.v3+json;q=0.50", "2"),
        ("application/vnd.example.v2+json, application/vnd.example.v3+json", "2"),
        ("application/vnd.example.v2+json;q=0.5, application/vnd.example.v3+json", "3"),
        ("application/vnd.example.v2+json;q=0, application/vnd.example.v3+json;q=0.1", "3"),
        # other ranges never give a version, whatever their q
        ("*/*, application/vnd.example.v2+json;q=0.1", "2"),
        ("application/json, text/html;q=0.9", None),
        ("application/vnd.other.v2+json", None),
        ("application/vnd.example.v2+xml", None),
        ("application/vnd.example.v+json", None),
        ("application/vnd.example.v@+json", None),
        ("xapplication/vnd.example.v2+json", None),
        # parameters, before and after q
        ("application/vnd.example.v2+json; charset=utf-8", "2"),
        ("application/vnd.example.v2+json;charset=utf-8;q=0.4, "
         "application/vnd.example.v3+json;q=0.3;ext=1", "2"),
        ("application/vnd.example.v2+json;q=0.4;q=0.9, application/vnd.example.v3+json;q=0.5", "3"),
        ("application/vnd.example.v2+json;;q=0.9;", "2"),  # empty parameters are allowed
        # spacing and case
        ("  application/vnd.example.v2+json \t ;\t q=0.7 , ,application/vnd.example.v3+json;q=0.6",
         "2"),
        ("APPLICATION/VND.EXAMPLE.V2+JSON", "2"),
        ("application/vnd.example.vBeta+json", "Beta"),  # the version keeps its case
        ("application/vnd.example.v2+json;Q=0, application/vnd.example.v3+json;q=0.2", "3"),
        # malformed q: that range is ignored
        ("application/vnd.example.v2+json;q=1.5, application/vnd.example.v3+json;q=0.1", "3"),
        ("application/vnd.example.v2+json;q=0.1234", None),
        ("application/vnd.example.v2+json;q=", None),
        ("application/vnd.example.v2+json;q=.5", None),
        ("application/vnd.example.v2+json;q=1.001", None),
        ("application/vnd.example.v2+json;q=1.000", "2"),
        ("application/vnd.example.v2+json;q=-1", None),
        ('application/vnd.example.v2+json;q="0.5"', None),
        # quoted strings, with commas, semicolons and escapes inside
        ('application/vnd.example.v2+json;x="a, application/vnd.example.v3+json";q=0.5', "2"),
        ('text/plain;x="a\\"b,c";q=1, application/vnd.example.v4+json;q=0.2', "4"),
        ('application/vnd.example.v2+json;x="unterminated, application/vnd.example.v3+json', None),
        # other malformed ranges are skipped, the rest still counts
        ("application/vnd.example.v2+json garbage, application/vnd.example.v3+json;q=0.1", "3"),
        ("application/vnd.example.v2+json;x, application/vnd.example.v3+json;q=0.1", "3"),
        ("application/vnd.example.v2+json;=1, application/vnd.example.v3+json;q=0.1", "3"),
        ("/, application/vnd.example.v3+json", "3"),
        ("application/vnd.example/v2+json", None),
        ("", None),
        (",,,", None),
    ],
)
def test_accept_edge_cases(accept, version):
    v = Versioning(VersioningSpec(accept=ACCEPT))
    assert v.accept_version(accept) == version
    expected = NO_VERSION if version is None else (version, "accept")
    assert v.extract(Head(accept=accept.encode())) == expected


def test_parse_accept_lists_ranges_with_q_in_thousandths():
    assert parse_accept('a/b;q=0.5;x="a,b", c/d ; Q=1.0 , e/f;q=0, g/h;q=2, */*;q=0.001') == [
        ("a/b", 500), ("c/d", 1000), ("*/*", 1),
    ]


# -- properties ----------------------------------------------------------------------------

TOKEN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,31}")


@settings(max_examples=400, deadline=None)
@given(path=st.binary(max_size=60), header=st.none() | st.binary(max_size=40),
       accept=st.none() | st.binary(max_size=120),
       precedence=st.permutations(["path", "header", "accept"]))
def test_arbitrary_bytes_never_crash(path, header, accept, precedence):
    v = full(precedence=tuple(precedence), default="1")
    headers = {}
    if header is not None:
        headers["x_api_version"] = header
    if accept is not None:
        headers["accept"] = accept
    try:
        found = v.extract(Head(path, **headers))
    except VersionError as err:
        assert err.source == "header" and header and not TOKEN.fullmatch(header.decode("latin-1"))
    else:
        assert found.source in ("path", "header", "accept", "default")
        assert TOKEN.fullmatch(found.value)
    stripped = v.strip_path(path)
    assert stripped == path or stripped.startswith(b"/")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=255), max_size=120))
def test_arbitrary_accept_text(accept):
    for media_type, q in parse_accept(accept):
        assert 0 < q <= 1000 and media_type.count("/") == 1
    version = Versioning(VersioningSpec(accept=ACCEPT)).accept_version(accept)
    assert version is None or TOKEN.fullmatch(version)


VERSIONS = st.from_regex(TOKEN, fullmatch=True)
OTHERS = st.sampled_from(["*/*", "text/html", "application/json", "application/*",
                          "application/vnd.other.v3+json", "application/vnd.example.v+json"])
QVALUES = st.sampled_from(
    [None, "0", "0.", "0.0", "0.000", "0.001", "0.1", "0.5", "0.50", "0.500", "0.9", "0.999",
     "1", "1.", "1.0", "1.000"]
)
PARAMS = st.lists(st.sampled_from(["charset=utf-8", 'x="a, b;c"', "level=1", 'e="\\"q\\""']),
                  max_size=2)
OWS = st.sampled_from(["", " ", "\t", "  "])


def _q(text: str | None) -> int:
    if text is None:
        return 1000
    whole, _, frac = text.partition(".")
    return int(whole) * 1000 + int((frac + "000")[:3])


@st.composite
def accept_lists(draw):
    """A valid Accept value and the version the rules say it names."""
    parts = []
    best, best_q = None, 0
    for _ in range(draw(st.integers(1, 6))):
        version = draw(st.none() | VERSIONS)
        if version is None:
            media = draw(OTHERS)
        else:
            literal = draw(st.sampled_from([MT, MT.upper(), "Application/Vnd.Example.V"]))
            media = literal + version + draw(st.sampled_from(["+json", "+JSON"]))
        q = draw(QVALUES)
        params = draw(PARAMS)
        if q is not None:
            params.insert(draw(st.integers(0, len(params))), "q=" + q)
            # parameters after q are accept-ext; an extension named q is one of them
            if draw(st.booleans()):
                params.append("q=0")
        text = media + "".join(draw(OWS) + ";" + draw(OWS) + p for p in params)
        parts.append(draw(OWS) + text + draw(OWS))
        if version is not None and _q(q) > best_q:
            best, best_q = version, _q(q)
    return ",".join(parts), best


@settings(max_examples=500, deadline=None)
@given(accept_lists())
def test_generated_accept_lists_pick_the_highest_q_match(case):
    accept, expected = case
    v = Versioning(VersioningSpec(accept=ACCEPT))
    assert v.accept_version(accept) == expected
    assert v.extract(Head(accept=accept.encode())) == (
        NO_VERSION if expected is None else (expected, "accept")
    )
