"""Rewrites a file in place the way an editor or a tool that doesn't rename does: truncate it,
then write the new text in pieces with a short pause before each; over and over.

Run as a script, in its own process, so that the test's threads never hold it up:

    python inplace_writer.py TARGET SOURCE --pieces 6 --pause 0.002 --rewrites 150

SOURCE's lines are split into PIECES runs of whole lines. It stops after REWRITES rewrites
(0: at SIGTERM, once the rewrite under way is done), then prints, as JSON, how many it made and the longest time the target may have been left half written (from
before one write, or the truncation, to after the next): a reader's settle window has to be
longer for the file to look busy whenever it is half written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("source")
    parser.add_argument("--pieces", type=int, default=6)
    parser.add_argument("--pause", type=float, default=0.002)
    parser.add_argument("--rewrites", type=int, default=150)
    args = parser.parse_args()
    with open(args.source, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    size = -(-len(lines) // args.pieces)
    pieces = [b"".join(lines[i:i + size]) for i in range(0, len(lines), size)]
    stopped = []
    signal.signal(signal.SIGTERM, lambda *_: stopped.append(True))
    longest = 0.0
    rewrites = 0
    while not stopped and (args.rewrites == 0 or rewrites < args.rewrites):
        rewrites += 1
        # The file changes somewhere inside each call (the truncating open, each write): from
        # before one call to after the next is the most it can have stayed half written.
        before = time.monotonic()
        fd = os.open(args.target, os.O_WRONLY | os.O_TRUNC)
        for piece in pieces:
            time.sleep(args.pause)
            started = time.monotonic()
            os.write(fd, piece)
            longest = max(longest, time.monotonic() - before)
            before = started
        os.close(fd)
        time.sleep(args.pause)  # whole, for a moment
    print(json.dumps({"rewrites": rewrites, "longest_half_written": longest}))


if __name__ == "__main__":
    main()
