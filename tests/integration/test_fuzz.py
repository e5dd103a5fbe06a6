"""A bounded, seeded mutation-fuzz campaign against a real fastgw (tests/fuzz/).

Thousands of requests, valid ones of every shape and their byte-level mutations, go to fastgw
(``python -m fastgw run``, once with the compiled parser and once with the pure twin) in front
of a raw backend that frames everything it receives with an independent strict HTTP/1.1 framer.
The campaign passes when: fastgw stays up and logs no traceback or ERROR line; every forwarded
request frames strictly and is one of the client's valid requests, framed the same way (method,
target, Host, body, trailers, end-to-end fields, Upgrade); no request reaches upstream from
inside a body or after an invalid one; every response frames strictly, in order, each backend
answer on the connection of the request it belongs to, with its body and trailers; refusals
are the documented ones and close; valid complete requests are answered; a WebSocket tunnel
echoes exactly and closes cleanly; every connection is answered or closed within the
deadline; a plain request still works afterwards; and SIGTERM stops fastgw with status 0.

The cases are fixed by (SEED, case number): a failure prints both and the exact bytes, and

    python -m tests.fuzz --seed SEED --case N [--parser pure]

replays it. The long run is one command (docs/data-path.md, "Fuzzing"; about 250-300 cases a
second on two cores, so some 12 minutes for 200000):

    python -m tests.fuzz --seed 7 --cases 200000 --findings-dir /tmp/fuzz-findings

A finding kind listed in KNOWN_FINDINGS is reported by the campaign but does not fail it: each
entry names the reproducing case. Fix the gateway, then remove the entry, and the campaign
checks it like the rest. tests/unit/test_fuzz_oracle.py shows that the oracle catches planted
differences (the campaign can fail).
"""

from __future__ import annotations

import pytest

from tests.fuzz.campaign import Harness

SEED = 1
# cases per parser (the pure twin's gateway is slower): about 25 s in all on two cores
CASES = {"compiled": 3000, "pure": 2000}

# Gateway findings that every seed hits often enough that no bounded run passes without them.
# Each: what is wrong, and how to reproduce it (``python -m tests.fuzz --seed S --case N``
# replays a case). Only the kind named is let through: the oracle gives each of these its own
# kind, so everything else is still checked.
KNOWN_FINDINGS: dict[str, str] = {
    # none open. Fixed (issue 10): lenient-host (Host shaped as uri-host [":" port] now),
    # upgrade-http10 (Upgrade ignored in HTTP/1.0), tunnel-half-close (a FIN before the 101
    # goes on to the upstream), xff-unknown (the peer address is taken from accept()).
}


@pytest.mark.parametrize("parser,first", [("compiled", 0), ("pure", CASES["compiled"])],
                         ids=["compiled", "pure"])
def test_fuzz_campaign(tmp_path, parser, first):
    cases = CASES[parser]
    with Harness(tmp_path, parser) as harness:
        report = harness.run(SEED, range(first, first + cases))
        problems = harness.finish()
    gateway = harness.gateway  # stopped by now: SIGTERM must have been enough, and clean
    if gateway.killed or gateway.proc.returncode != 0:
        problems.append(f"fastgw did not stop cleanly on SIGTERM (status "
                        f"{gateway.proc.returncode})\n{gateway.log_tail()}")
    print(report.summary())  # shown with -s, or with a failure
    unexpected = [f for f in report.findings if f.kind not in KNOWN_FINDINGS]
    details = "\n\n".join(f.describe() for f in unexpected[:10])
    assert not unexpected, f"{report.summary()}\n\n{details}"
    assert not problems, "\n".join(problems)
    # the campaign must have exercised what it claims to: a run that only produced 400s
    # (a broken seed generator) or only 200s (a mutator that does nothing) proves little
    assert report.cases == cases
    assert report.forwarded >= cases // 3, report.summary()
    assert report.statuses[400] >= cases // 4, report.summary()
    for status in (100, 101, 408, 417, 501):
        assert report.statuses[status], f"no {status} in the campaign\n{report.summary()}"
