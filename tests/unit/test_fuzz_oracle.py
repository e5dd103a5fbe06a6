"""The fuzzer's own parts, without sockets: the strict reference framer, the reproducibility of
cases, and the oracle, which must catch planted differences (so the campaign in
tests/integration/test_fuzz.py can fail: a fuzzer whose oracle accepts anything passes forever).
"""

from __future__ import annotations

import pytest

from tests.fuzz.backend import Forwarded
from tests.fuzz.campaign import RULES
from tests.fuzz.mutate import Case, make_case
from tests.fuzz.oracle import Context, Seen, check_case
from tests.fuzz.strict import (
    CLIENT, FORWARDED, Violation, frame_request, frame_response, frame_stream,
)

IP = b"127.16.0.5"
UPSTREAM = b"127.0.0.1:9"
CTX = Context(RULES, UPSTREAM, IP)


def xff_tail(host: bytes) -> bytes:
    return (b"X-Forwarded-For: " + IP + b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: "
            + host + b"\r\n\r\n")


def forwarded(raw: bytes, case: int = 5) -> list[Forwarded]:
    """What the backend records for ``raw`` bytes arriving on one upstream connection."""
    out, pos = [], 0
    while pos < len(raw):
        try:
            msg = frame_request(raw, pos, FORWARDED)
        except Violation as exc:
            out.append(Forwarded(case, 1, exc.head, raw[pos:], error=exc.reason))
            break
        if msg is None or not msg.complete:
            out.append(Forwarded(case, 1, msg, raw[pos:], complete=False))
            break
        out.append(Forwarded(case, 1, msg, raw[msg.start:msg.end]))
        pos = msg.end
    return out


def answer(index: int, case: int = 5, close: bool = False) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: %d.%d\r\nContent-Length: 2\r\n%s\r\nok"
            % (case, index, b"Connection: close\r\n" if close else b""))


def judge(sent: bytes, upstream: bytes, received: bytes, ending: str = "eof") -> set[str]:
    case = Case(0, 5, sent, [], True)
    return {f.kind for f in check_case(case, Seen(received, ending, 0.1), forwarded(upstream),
                                       CTX)}


POST = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
POST_FORWARDED = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n" + xff_tail(b"h") + \
    b"hello"


# -- the reference framer -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nHost: h\nX: a\r\n\r\n",  # bare LF
    b"GET / HTTP/1.1\r\nHost: h\rX: a\r\n\r\n",  # bare CR
    b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",  # space before the colon
    b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",  # NUL in a value
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # two Hosts
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;a=b\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n",
    b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",  # userinfo
    b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /a HTTP/2.0\r\nHost: h\r\n\r\n",
])
def test_reference_refuses(data):
    assert frame_stream(data, CLIENT).end == "invalid"


@pytest.mark.parametrize("data,body", [
    (b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", b""),  # empty lines first (RFC 9112 2.2)
    (b"POST / HTTP/1.1\r\nHost:h\r\nContent-Length: 005\r\n\r\nhello", b"hello"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nContent-Length: 05\r\n\r\nhello",
     b"hello"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,Chunked\r\n\r\n"
     b"05 ; a = \"q\\\"\";b\r\nhello\r\n00;z\r\nT: 1\r\n\r\n", b"hello"),
    (b"GET HTTP://h:1?q HTTP/1.1\r\nHost: x\r\n\r\n", b""),
    (b"OPTIONS * HTTP/1.0\r\n\r\n", b""),
])
def test_reference_accepts(data, body):
    stream = frame_stream(data, CLIENT)
    assert stream.end in ("clean", "closed") and len(stream.messages) == 1, stream
    assert stream.messages[0].body == body


def test_reference_tells_a_misshapen_host_from_a_dangerous_one():
    """Host characters in the wrong shape leave the framing alone (``soft``: the gateway must
    refuse them, but a forwarded one is its own finding, "lenient-host"); any other byte in a
    Host is a Violation."""
    for host in (b"a:b:c", b"[::1", b":x", b"[zz]"):
        stream = frame_stream(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", CLIENT)
        assert stream.end == "clean" and stream.messages[0].soft, host
    for host in (b"a b", b"a\"b", b"a\x80b", b"a@b", b"a<b"):
        stream = frame_stream(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", CLIENT)
        assert stream.end == "invalid", host


def test_reference_frames_pipelined_and_absolute_form():
    stream = frame_stream(b"GET http://h:1 HTTP/1.1\r\nHost: x\r\n\r\n" + POST + b"GET /", CLIENT)
    assert [m.origin_target for m in stream.messages] == [b"/", b"/a"]
    assert stream.messages[0].host == b"h:1"
    assert stream.end == "partial"


def test_reference_frames_responses():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    assert frame_response(chunked, 0, b"GET", eof=True).body == b"ok"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    assert frame_response(head, 0, b"HEAD", eof=True).end == len(head)
    with pytest.raises(Violation):
        frame_response(head, 0, b"GET", eof=True)  # the body is missing
    with pytest.raises(Violation):
        frame_response(b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 0, b"GET", eof=True)


# -- cases ----------------------------------------------------------------------------------

def test_cases_are_reproducible():
    for number in (0, 17, 123456):
        first, again = make_case(3, number, RULES), make_case(3, number, RULES)
        assert (first.data, first.cuts, first.half_close) == (again.data, again.cuts,
                                                              again.half_close)
    assert make_case(3, 1, RULES).data != make_case(4, 1, RULES).data


def test_the_generator_builds_any_case():
    """A long run must not stop on a generator error: a few thousand cases of a few seeds."""
    for seed in (1, 7, 21):
        for number in range(2000):
            make_case(seed, number, RULES)


def test_cases_mix_valid_and_invalid_streams():
    ends = [frame_stream(make_case(1, n, RULES).data, RULES).end for n in range(400)]
    assert ends.count("invalid") > 100 and ends.count("clean") + ends.count("closed") > 100


# -- the oracle: a faithful gateway passes, every planted difference is caught ----------------

def test_oracle_accepts_a_faithful_exchange():
    assert judge(POST, POST_FORWARDED, answer(0)) == set()
    refused = (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
    assert judge(POST + b"GET / HTTP/1.1\r\n\r\n", POST_FORWARDED, answer(0) + refused) == set()


@pytest.mark.parametrize("upstream,kind", [
    (POST_FORWARDED.replace(b"hello", b"hellX"), "forwarded-mismatch"),  # another body
    (POST_FORWARDED.replace(b"POST /a", b"POST /b"), "forwarded-mismatch"),  # another target
    (POST_FORWARDED.replace(b"Host: h", b"Host: g"), "forwarded-mismatch"),
    (POST_FORWARDED.replace(b"Content-Length: 5\r\n", b"Content-Length: 5\r\nX-Added: 1\r\n"),
     "forwarded-mismatch"),  # an invented field line
    (POST_FORWARDED.replace(b"Host: h\r\n", b"Host: h\nX: 1\r\n"), "forwarded-invalid"),  # bare LF
    (POST_FORWARDED.replace(b"Content-Length: 5", b"Content-Length: 05"), "forwarded-invalid"),
    (POST_FORWARDED.replace(b"Content-Length: 5", b"Transfer-Encoding: chunked").replace(
        b"hello", b"5\r\nhello\r\n0\r\n\r\n"), "forwarded-mismatch"),  # framing changed
    (POST_FORWARDED + b"GET / HTTP/1.1\r\nHost: h\r\n" + xff_tail(b"h"), "forwarded-extra"),
    (POST_FORWARDED[:-2], "forwarded-cut"),  # a whole, valid request arrives cut short
])
def test_oracle_catches_a_planted_upstream_difference(upstream, kind):
    assert kind in judge(POST, upstream, answer(0))


def test_oracle_catches_a_request_smuggled_in_a_body():
    bait = b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n\r\n"
    sent = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(bait), bait)
    # a gateway that took the body for a second request
    upstream = (b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n" + xff_tail(b"h")
                + b"GET /smuggled HTTP/1.1\r\nHost: evil\r\n" + xff_tail(b"evil"))
    assert {"forwarded-mismatch", "forwarded-extra"} <= judge(sent, upstream,
                                                              answer(0) + answer(1))


def test_oracle_catches_forwarding_after_an_invalid_request():
    sent = b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"  # obs-fold
    upstream = b"GET / HTTP/1.1\r\nHost: h\r\nX: a b\r\n" + xff_tail(b"h")
    assert "forwarded-extra" in judge(sent, upstream, answer(0))


@pytest.mark.parametrize("received,ending,kind", [
    (answer(1), "eof", "response-mismatch"),  # another request's answer
    (answer(0, case=6), "eof", "response-mismatch"),  # another connection's answer
    (answer(0).replace(b"ok", b"no"), "eof", "response-mismatch"),
    (b"", "eof", "no-answer"),  # a valid request left unanswered
    (b"", "eof", "response-lost"),  # the backend answered, the client never saw it
    (answer(0), "timeout", "hang"),
    (b"ConnectionRefusedError()", "refused", "connection-refused"),
    (answer(0)[:-1], "eof", "response-malformed"),
    (answer(0) + b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", "eof",
     "response-status"),
    (answer(0, close=True) + answer(1), "eof", "response-after-close"),
    (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "eof", "response-status"),
])
def test_oracle_catches_a_planted_client_side_difference(received, ending, kind):
    assert kind in judge(POST, POST_FORWARDED, received, ending)


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
           b"tunnel bytes")
UPGRADE_FORWARDED = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
                     b"Upgrade: websocket\r\n" + xff_tail(b"h"))
SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nX-Fuzz-Case: 5.0\r\nConnection: upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n")


def test_oracle_follows_an_upgrade_into_the_tunnel():
    assert judge(UPGRADE, UPGRADE_FORWARDED, SWITCHED + b"tunnel bytes") == set()
    assert "tunnel-mismatch" in judge(UPGRADE, UPGRADE_FORWARDED, SWITCHED + b"tunnel byte")
    assert "tunnel-half-close" in judge(UPGRADE, UPGRADE_FORWARDED, SWITCHED + b"tunnel bytes",
                                        "reset")
    dropped = UPGRADE_FORWARDED.replace(b"Connection: upgrade\r\nUpgrade: websocket\r\n", b"")
    assert "forwarded-upgrade" in judge(UPGRADE, dropped, answer(0))
    http10 = UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0")  # RFC 9110 7.8: must be ignored
    assert "upgrade-http10" in judge(http10, UPGRADE_FORWARDED, SWITCHED + b"tunnel bytes")


def test_oracle_checks_framing_for_the_client_version():
    sent = b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n"
    upstream = b"".join(b"GET /%s HTTP/1.1\r\nHost: %s\r\n" % (p, UPSTREAM) + xff_tail(UPSTREAM)
                        for p in (b"a", b"b"))
    kept = answer(0).replace(b"Content-Length: 2\r\n", b"Content-Length: 2\r\n"
                             b"Connection: keep-alive\r\n")
    last = answer(1, close=True)
    assert judge(sent, upstream, kept + last) == set()
    assert "response-framing" in judge(sent, upstream, answer(0) + last)  # keep-alive unsaid
    chunked = (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: 5.0\r\nConnection: keep-alive\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    assert "response-framing" in judge(sent, upstream, chunked + last)


def test_oracle_checks_interim_responses_and_trailers():
    continued = b"HTTP/1.1 100 Continue\r\n\r\n" + answer(0)
    assert "response-status" in judge(POST, POST_FORWARDED, continued)  # no Expect sent
    expect = POST.replace(b"Host: h\r\n", b"Host: h\r\nExpect: 100-continue\r\n")
    assert judge(expect, POST_FORWARDED, continued) == set()
    # case 6, answer 0 is the backend's chunked answer with a trailer (backend.RESPONSES)
    sent, upstream = POST, POST_FORWARDED.replace(IP, b"127.16.0.6")
    ctx = Context(RULES, UPSTREAM, b"127.16.0.6")
    no_trailer = (b"HTTP/1.1 200 OK\r\nX-Fuzz-Case: 6.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"2\r\nok\r\n0\r\n\r\n")
    found = check_case(Case(0, 6, sent, [], True), Seen(no_trailer, "eof", 0.1),
                       forwarded(upstream, case=6), ctx)
    assert "response-mismatch" in {f.kind for f in found}


def test_oracle_leaves_an_abandoned_connection_to_the_upstream_checks():
    assert judge(POST, POST_FORWARDED, b"", "abandoned") == set()
    assert "forwarded-mismatch" in judge(POST, POST_FORWARDED.replace(b"hello", b"hellX"), b"",
                                         "abandoned")
