"""The fuzzer's judgement of one case: what the client sent, saw, and what reached upstream.

The reference framing of the client's bytes (``strict.frame_stream``) says which requests the
stream holds: the valid ones, then where it stops being valid. Against it:

- upstream: every forwarded byte frames strictly (``strict.FORWARDED``); the forwarded requests
  are a prefix of the client's valid ones, each with the same method, the target in origin-form,
  the same Host and body, no trailers (they are dropped), exactly the client's end-to-end fields (so nothing was
  smuggled in a body, no header line was split or invented), and Upgrade only as the client
  asked for it; a request reaches upstream cut short only when the client's own bytes stop
  being valid or complete inside it;
- client: every byte the gateway sent frames strictly as responses, in order; each backend
  answer carries the case and its index (so it reached the right connection and request), its
  body and trailers intact, framed for the client's version; interim responses are 100 Continue
  to requests that asked for it; only the gateway's documented refusals appear, and the last
  one closes; a valid, complete request is never left without an answer; after a 101 the
  tunnel gives back exactly what the client sent and ends cleanly after the client's FIN; the
  connection ends (answered or closed) before the deadline.

Each kind of finding has its own name, so a known one can be let through alone. Pure
functions: a case, what the client saw and what the backend recorded, in; findings out.
"""

from __future__ import annotations

from dataclasses import dataclass

from .backend import ANSWER_TRAILERS, Forwarded, answer_kind
from .mutate import Case
from .strict import Message, Rules, Stream, Violation, frame_response, frame_stream

# the gateway's own answers to requests it refuses (docs/data-path.md, "Errors")
REFUSALS = {400, 405, 408, 413, 414, 417, 431, 501, 505}
# fields the gateway writes itself, never copied from the client
WRITTEN = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade",
                     b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
DROPPED = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection",
                     b"proxy-connection", b"keep-alive", b"te", b"trailer", b"upgrade",
                     b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                     b"forwarded", b"x-real-ip", b"http2-settings", b"expect"})
NOT_LISTABLE = frozenset({b"host", b"content-length", b"transfer-encoding"})


@dataclass
class Seen:
    """What the client side observed on its connection."""

    received: bytes
    ending: str  # "eof", "reset", "timeout" (the deadline passed), "refused" (no connection),
    #              "abandoned" (the client left without reading: nothing to judge on its side)
    seconds: float
    sent_all: bool = True  # False: the gateway closed before the client could send everything


@dataclass
class Finding:
    kind: str
    detail: str
    case: Case

    def describe(self) -> str:
        return f"[{self.kind}] {self.detail}\n  {self.case.describe()}"


@dataclass
class Context:
    rules: Rules
    upstream: bytes  # the backend's address: the Host of an HTTP/1.0 request without one
    client_ip: bytes


def check_case(case: Case, seen: Seen, forwarded: list[Forwarded], ctx: Context,
               stream: Stream | None = None) -> list[Finding]:
    stream = stream or frame_stream(case.data, ctx.rules)
    problems = (check_forwarded(stream, forwarded, ctx)
                + check_responses(stream, seen, forwarded, case))
    return [Finding(kind, detail, case) for kind, detail in problems]


# -- upstream side -------------------------------------------------------------------------


def check_forwarded(stream: Stream, forwarded: list[Forwarded], ctx: Context) -> list[tuple]:
    problems = []
    valid = stream.messages
    for i, item in enumerate(forwarded):
        if item.error is not None:
            problems.append(("forwarded-invalid", f"request {i} as forwarded: {item.describe()}"))
            break
        if i < len(valid):
            if not item.complete:
                problems.append(("forwarded-cut", f"request {i} was sent whole and valid but "
                                 f"reached upstream cut short: {item.describe()}"))
            else:
                problems += [("forwarded-mismatch", f"request {i}: {p}; {item.describe()}")
                             for p in compare(valid[i], item.message, ctx)]
            if item.complete:
                kind = "upgrade-http10" if valid[i].version == b"HTTP/1.0" else (
                    "forwarded-upgrade")
                problems += [(kind, f"request {i}: {p}; {item.describe()}")
                             for p in compare_upgrade(valid[i], item.message)]
            if valid[i].soft:
                problems.append(("lenient-host", f"request {i} must be refused "
                                 f"({'; '.join(valid[i].soft)}) but reached upstream: "
                                 f"{item.describe()}"))
            continue
        why = _why_not_valid(stream)
        if item.complete:
            problems.append(("forwarded-extra", f"request {i} reached upstream complete, but "
                             f"the client's stream has only {len(valid)} valid requests "
                             f"({why}): {item.describe()}"))
        elif i > len(valid) or stream.end not in ("partial", "invalid"):
            problems.append(("forwarded-extra", f"request {i} reached upstream (cut short), "
                             f"but {why}: {item.describe()}"))
        elif item.message is not None:
            expected = stream.partial or (stream.violation.head if stream.violation else None)
            if expected is None:
                problems.append(("forwarded-extra", f"the head of request {i} is not valid "
                                 f"({why}) but it reached upstream: {item.describe()}"))
            else:
                problems += [("forwarded-mismatch", f"request {i} (cut short): {p}; "
                              f"{item.describe()}")
                             for p in compare_head(expected, item.message, ctx)]
    return problems


def _why_not_valid(stream: Stream) -> str:
    if stream.end == "invalid":
        return f"the next is invalid: {stream.violation}"
    if stream.end == "closed":
        return "the last valid one closes the connection"
    if stream.end == "partial":
        return "the next is incomplete"
    return "nothing follows them"


def expected_fields(sent: Message) -> list[tuple[bytes, bytes]]:
    """The client's end-to-end fields, as fastgw must forward them (docs/data-path.md)."""
    listed = set(sent.elements(b"connection")) - NOT_LISTABLE
    dropped = DROPPED | listed
    # never forwarded: names with "_" (underscores_in_headers off) and the client's own
    # X-Forwarded-* (docs/operations.md, Hardening: request headers)
    return [(n, v) for n, v in sent.headers if n.lower() not in dropped and b"_" not in n
            and not n.lower().startswith(b"x-forwarded-")]


def compare_head(sent: Message, got: Message, ctx: Context) -> list[str]:
    problems = []
    if got.method != sent.method:
        problems.append(f"method {got.method!r}, the client sent {sent.method!r}")
    if got.target != sent.origin_target:
        problems.append(f"target {got.target!r}, expected {sent.origin_target!r}")
    # no Host (HTTP/1.0) or an empty one: fastgw sends the upstream's address instead
    host = sent.host or ctx.upstream
    if got.values(b"host") != [host]:
        problems.append(f"Host {got.values(b'host')!r}, expected {host!r}")
    if (sent.framing == "chunked") != (got.framing == "chunked"):
        problems.append(f"framing {got.framing}, the client's was {sent.framing}")
    fields = [(n, v) for n, v in got.headers if n.lower() not in WRITTEN]
    if fields != expected_fields(sent):
        problems.append(f"end-to-end fields {fields!r}, expected {expected_fields(sent)!r}")
    received = b", ".join(e.strip(b" \t") for v in sent.values(b"x-forwarded-for")  # a canonical
                          for e in v.split(b",") if e.strip(b" \t"))  # list: no empty elements
    xff = received + b", " + ctx.client_ip if received else ctx.client_ip
    if got.values(b"x-forwarded-for") != [xff]:
        problems.append(f"X-Forwarded-For {got.values(b'x-forwarded-for')!r}, expected {xff!r}")
    return problems


def compare_upgrade(sent: Message, got: Message) -> list[str]:
    """Upgrade is forwarded only when Connection lists it (RFC 9110 7.6.1), never for an
    HTTP/1.0 request (7.8: a server must ignore it), as every protocol of every field."""
    protocols = [p for p in sent.elements(b"upgrade")  # h2c, h2, HTTP/2 are never forwarded
                 if p.lower().partition(b"/")[0] not in (b"h2c", b"h2")
                 and not p.lower().startswith(b"http/2")]
    wanted = (sent.version == b"HTTP/1.1" and b"upgrade" in sent.elements(b"connection")
              and protocols)
    forwarded = got.elements(b"upgrade")
    asked = b"upgrade" in got.elements(b"connection")
    if wanted and (forwarded != protocols or not asked):
        return [f"Upgrade forwarded as {got.values(b'upgrade')!r} (Connection "
                f"{got.values(b'connection')!r}), the client asked for {protocols!r}"]
    if not wanted and (forwarded or asked):
        return [f"Upgrade {got.values(b'upgrade')!r} forwarded for a {sent.version.decode()} "
                f"request with Connection {sent.values(b'connection')!r}"]
    return []


def compare(sent: Message, got: Message, ctx: Context) -> list[str]:
    """How a complete forwarded request differs from the client's."""
    problems = compare_head(sent, got, ctx)
    if got.body != sent.body:
        problems.append(f"body {got.body[:200]!r} ({len(got.body)} bytes), the client's was "
                        f"{sent.body[:200]!r} ({len(sent.body)} bytes)")
    if got.trailers:  # request trailers are not forwarded (they would bypass header checks)
        problems.append(f"trailers {got.trailers!r} forwarded, the client's were "
                        f"{sent.trailers!r}")
    return problems


# -- client side ---------------------------------------------------------------------------


def frame_responses(stream: Stream, seen: Seen) -> tuple[list[Message], list, str | None,
                                                        bytes | None]:
    """The final responses in what the client received, the interim ones (with the index of
    the request each precedes), the reason the bytes stopped framing (None when they all
    framed), and after a 101 (the last "final" response), the tunnel's bytes."""
    methods = [m.method for m in stream.messages] + [stream.next_method]
    finals: list[Message] = []
    interim: list[tuple[int, Message]] = []
    pos = 0
    data = seen.received
    while pos < len(data):
        method = methods[len(finals)] if len(finals) < len(methods) else None
        try:
            msg = frame_response(data, pos, method, eof=True)
            if (method == b"HEAD" and msg is not None and msg.status >= 400
                    and not data.startswith(b"HTTP/1.", msg.end) and msg.end < len(data)):
                # a refusal may come before the gateway knew the method: with a body
                msg = frame_response(data, pos, None, eof=True)
        except Violation as exc:
            return finals, interim, exc.reason, None
        if msg is None:
            break
        pos = msg.end
        if msg.status == 101:
            finals.append(msg)
            return finals, interim, None, data[pos:]
        if msg.status < 200:
            interim.append((len(finals), msg))
        else:
            finals.append(msg)
    return finals, interim, None, None


def check_responses(stream: Stream, seen: Seen, forwarded: list[Forwarded], case: Case,
                    ) -> list[tuple]:
    problems = []
    number = case.number
    if seen.ending == "abandoned":
        return problems
    if seen.ending == "refused":
        return [("connection-refused", f"could not connect: {seen.received.decode()}")]
    if seen.ending == "timeout":
        problems.append(("hang", f"the connection neither closed nor was answered in "
                         f"{seen.seconds:.1f}s; received {seen.received[:500]!r}"))
    finals, interim, broken, tunnel = frame_responses(stream, seen)
    if broken is not None and seen.ending != "reset":
        problems.append(("response-malformed", f"{broken}; received {seen.received[:1000]!r}"))
    problems += [p for p in (_check_interim(msg, i, stream, seen) for i, msg in interim) if p]
    answered = 0
    for i, msg in enumerate(finals):
        if i and b"close" in finals[i - 1].elements(b"connection"):
            problems.append(("response-after-close", f"response {i} follows one that closed "
                             f"the connection; received {seen.received[:1000]!r}"))
        if msg.status in (200, 101):
            problems += _check_answer(msg, i, stream, number, answered, i < len(finals) - 1)
            answered += 1
        elif msg.status in REFUSALS:
            if i != len(finals) - 1 or b"close" not in msg.elements(b"connection"):
                problems.append(("response-status", f"refusal {msg.status} (response {i}) does "
                                 f"not close the connection; received {seen.received[:1000]!r}"))
        else:
            problems.append(("response-status", f"response {i} is {msg.status}: the backend "
                             f"answered every request it framed; received "
                             f"{seen.received[:1000]!r}"))
    backend_answered = sum(1 for f in forwarded if f.complete and f.error is None)
    if seen.ending == "eof" and broken is None and answered != backend_answered:
        problems.append(("response-lost", f"{answered} backend answers reached the client, the "
                         f"backend answered {backend_answered} requests; received "
                         f"{seen.received[:1000]!r}"))
    valid = len(stream.messages)
    if tunnel is not None:
        problems += _check_tunnel(tunnel, len(finals) - 1, stream, seen, case)
        valid = min(valid, len(finals))  # what followed the upgrade request was tunnel data
    if len(finals) > valid + 1:
        problems.append(("response-extra", f"{len(finals)} responses to {valid} valid requests "
                         f"and what followed them"))
    if (seen.ending == "eof" and broken is None and seen.sent_all and len(finals) < valid
            and not _ends_connection(finals)):
        problems.append(("no-answer", f"the connection closed after {len(finals)} responses, "
                         f"the client sent {valid} valid complete requests; received "
                         f"{seen.received[:1000]!r}"))
    return problems


def _check_interim(msg: Message, i: int, stream: Stream, seen: Seen) -> tuple | None:
    """Only 100 Continue, only to an HTTP/1.1 request that asked for it (RFC 9110 10.1.1; no
    1xx to an HTTP/1.0 client, 15.2)."""
    head = stream.messages[i] if i < len(stream.messages) else (
        stream.partial or (stream.violation.head if stream.violation else None))
    if msg.status == 100 and (head is None or (head.version == b"HTTP/1.1" and b"100-continue"
                                               in head.elements(b"expect"))):
        return None
    return ("response-status", f"interim {msg.status} before final response {i}, to a request "
            f"that did not ask for it; received {seen.received[:1000]!r}")


def _check_answer(msg: Message, i: int, stream: Stream, number: int, answered: int,
                  more: bool) -> list:
    """A backend answer: the one to this case's next forwarded request, its body (and
    trailers) intact, framed for the client's version; ``more``: other responses follow."""
    problems = []
    tag = msg.values(b"x-fuzz-case")
    if tag != [b"%d.%d" % (number, answered)]:
        problems.append(("response-mismatch", f"response {i} is the backend's answer {tag!r}, "
                         f"expected {number}.{answered}"))
    request = stream.messages[i] if i < len(stream.messages) else None
    head = request is not None and request.method == b"HEAD" or msg.status == 101
    if msg.body != (b"" if head else b"ok"):
        problems.append(("response-mismatch", f"response {i} has the body {msg.body[:100]!r}"))
    if request is None:
        return problems
    if request.version == b"HTTP/1.0":
        if msg.values(b"transfer-encoding"):
            problems.append(("response-framing", f"response {i} to an HTTP/1.0 request has "
                             f"Transfer-Encoding: {msg.values(b'transfer-encoding')!r}"))
        if more and b"keep-alive" not in msg.elements(b"connection"):
            problems.append(("response-framing", f"response {i} to an HTTP/1.0 request keeps "
                             f"the connection without saying keep-alive"))
    elif (not head and answer_kind(number, answered) == 2
          and msg.trailers != ANSWER_TRAILERS):
        problems.append(("response-mismatch", f"response {i} has the trailers "
                         f"{msg.trailers!r}, the backend sent {ANSWER_TRAILERS!r}"))
    return problems


def _check_tunnel(tunnel: bytes, i: int, stream: Stream, seen: Seen, case: Case) -> list:
    """After the 101 to request ``i``, the backend echoed every byte: the client must get back
    exactly what it sent after that request."""
    if i >= len(stream.messages):
        return [("response-extra", f"101 to request {i}, which is not a valid request")]
    expected = case.data[stream.messages[i].end:]
    if seen.ending == "eof" and seen.sent_all and tunnel != expected:
        return [("tunnel-mismatch", f"after the 101, the tunnel gave back {tunnel[:300]!r} "
                 f"({len(tunnel)} bytes), the client sent {expected[:300]!r} "
                 f"({len(expected)} bytes)")]
    if case.half_close and seen.sent_all and seen.ending != "eof":
        # the client's FIN must reach the upstream (which then closes): a clean end
        return [("tunnel-half-close", f"the client half-closed after its upgrade request; the "
                 f"tunnel ended by {seen.ending} after {seen.seconds:.2f}s, not by a close")]
    return []


def _ends_connection(finals: list[Message]) -> bool:
    """The last response explains why nothing more was answered: the gateway refused a
    request, or the body was delimited by the close (HTTP/1.0 client, chunked upstream)."""
    if not finals:
        return False
    last = finals[-1]
    return last.status != 200 or (last.framing == "close"
                                  and b"close" in last.elements(b"connection"))
