"""A mutation fuzzer for fastgw's data path, run against a real gateway and a real upstream.

Pieces, each with one job:

- ``strict.py``: an independent, strict HTTP/1.1 framer (RFC 9110/9112): the reference for what
  a byte stream means, for client bytes, forwarded bytes and responses;
- ``seeds.py``: valid requests of every shape the gateway handles (and obs-fold, which it must
  refuse);
- ``mutate.py``: byte-level mutations, and ``make_case(seed, n)``: case n of campaign ``seed``,
  the same bytes, pieces and half-close on every run;
- ``backend.py``: the upstream, a raw TCP server that frames everything fastgw forwards with the
  strict framer and answers each request with a response naming its case;
- ``oracle.py``: the judgement of one case (what was sent, what the client saw, what reached
  the upstream);
- ``campaign.py``: the harness (backend + ``python -m fastgw run``), the client side, the report.

The bounded campaign runs in the default suite (tests/integration/test_fuzz.py). The long run
and the replay of one case, from the repository root (docs/data-path.md, "Fuzzing"):

    python -m tests.fuzz --seed 7 --cases 200000 --findings-dir /tmp/fuzz-findings
    python -m tests.fuzz --seed 7 --case 1234
"""
