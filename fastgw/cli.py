"""Command line: ``fastgw run|check|demo|version``. Parses arguments and hands over; nothing
else."""

from __future__ import annotations

import argparse
import sys

from . import __version__


CONFIG_HELP = "configuration file (.yaml, .toml or .json)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgw", description="HTTP/1.1 reverse proxy and API gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway")
    run.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    check = commands.add_parser("check", help="validate a configuration file and summarize it")
    check.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    demo = commands.add_parser(
        "demo", help="run the gateway on a built-in configuration, with demo upstreams")
    demo.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                      help="where the gateway listens (default: %(default)s)")
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        from . import _core

        print(f"fastgw {__version__} (parser: {_core.IMPLEMENTATION})")
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.listen)

    from .config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"fastgw: {exc}", file=sys.stderr)
        return 1
    if args.command == "check":
        from .config.summary import summarize, warnings

        print(summarize(config, args.config))
        for warning in warnings(config):
            print(f"warning: {warning}")
        return 0

    from .server import serve

    return serve(config, args.config)
