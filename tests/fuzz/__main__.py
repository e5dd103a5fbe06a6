"""The long fuzz run, and the replay of one case, from the command line.

    python -m tests.fuzz --seed 7 --cases 200000 [--parser pure] [--findings-dir DIR]
    python -m tests.fuzz --seed 7 --case 1234           # replay one case, verbosely

Exits 1 when anything was found (a finding of a kind given with --tolerate is only listed).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .campaign import CONCURRENCY, RULES, Harness, Report
from .oracle import Finding, frame_responses
from .strict import frame_stream


def main(argv: list[str] | None = None) -> int:
    args = _arguments().parse_args(argv)
    # SIGTERM ends the run like Ctrl-C: through the harness, which stops fastgw
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="fastgw-fuzz-") as tmp:
        workdir = Path(args.workdir or tmp)
        with Harness(workdir, args.parser) as harness:
            if args.case is not None:
                return _replay(harness, args.seed, args.case)
            numbers = range(args.start, args.start + args.cases)
            report = harness.run(args.seed, numbers, args.concurrency, progress=args.progress,
                                 on_finding=lambda finding: _found(finding, args))
            problems = harness.finish()
    print(report.summary())
    _print_findings(report, args)
    for problem in problems:
        print(f"GATEWAY: {problem}")
    failing = [f for f in report.findings if f.kind not in args.tolerate]
    return 1 if failing or problems or set(report.kinds) - set(args.tolerate) else 0


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="campaign seed (default 1)")
    parser.add_argument("--cases", type=int, default=10000, help="how many cases (10000)")
    parser.add_argument("--start", type=int, default=0, help="number of the first case (0)")
    parser.add_argument("--case", type=int, help="replay this one case, verbosely")
    parser.add_argument("--parser", choices=["compiled", "pure"], default="compiled")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY,
                        help=f"connections at a time ({CONCURRENCY})")
    parser.add_argument("--findings-dir", type=Path,
                        help="write each finding's bytes (.bin) and description (.txt) here")
    parser.add_argument("--tolerate", action="append", default=[], metavar="KIND",
                        help="a finding kind that does not fail the run (repeatable)")
    parser.add_argument("--progress", type=float, default=30.0,
                        help="print a summary every so many seconds (0: never)")
    parser.add_argument("--workdir", help="where fastgw's config and log go (default: a "
                        "temporary directory)")
    return parser


def _found(finding: Finding, args) -> None:
    """As soon as a finding is made: one line on stderr, and its files (a long run that is
    interrupted keeps what it found)."""
    print(f"FOUND [{finding.kind}] seed {finding.case.seed} case {finding.case.number}",
          file=sys.stderr, flush=True)
    if args.findings_dir is not None:
        _save(finding, args.findings_dir, args.parser)


def _print_findings(report: Report, args) -> None:
    shown = Counter()
    for finding in report.findings:
        shown[finding.kind] += 1
        print(f"\n{finding.describe()}")
        if finding.case.number >= 0:
            print(f"  replay: python -m tests.fuzz --seed {finding.case.seed} "
                  f"--case {finding.case.number} --parser {args.parser}")
    for kind, count in report.kinds.items():
        if count > shown[kind]:
            print(f"\n({count - shown[kind]} more findings of kind {kind} not shown)")


def _save(finding: Finding, directory: Path, parser: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{finding.kind}-seed{finding.case.seed}-case{finding.case.number}-{parser}"
    (directory / f"{stem}.bin").write_bytes(finding.case.data)
    with open(directory / f"{stem}.txt", "a") as f:
        f.write(finding.describe() + "\n\n")


def _replay(harness: Harness, seed: int, number: int) -> int:
    case, findings = harness.replay(seed, number)
    stream = frame_stream(case.data, RULES)
    print(case.describe())
    print(f"reference: {len(stream.messages)} valid requests, then {stream.end}"
          f"{': ' + str(stream.violation) if stream.violation else ''}")
    for i, msg in enumerate(stream.messages):
        print(f"  request {i}: {msg.method!r} {msg.target!r} {msg.framing} body "
              f"{msg.body[:80]!r}{' limits ' + str(msg.limits) if msg.limits else ''}"
              f"{' soft ' + str(msg.soft) if msg.soft else ''}")
    seen = harness.last_seen
    if seen is not None:
        finals, interim, broken, _tunnel = frame_responses(stream, seen)
        print(f"client: {seen.ending} after {seen.seconds:.2f}s, {len(interim)} interim and "
              f"{len(finals)} final responses {[m.status for m in finals]}"
              f"{', unframed: ' + broken if broken else ''}\n  received {seen.received!r}")
    for item in harness.last_forwarded:
        print(f"  forwarded: {item.describe()}")
    for finding in findings:
        print(f"FINDING [{finding.kind}] {finding.detail}")
    problems = harness.finish()
    for problem in problems:
        print(f"GATEWAY: {problem}")
    return 1 if findings or problems else 0


if __name__ == "__main__":
    sys.exit(main())
