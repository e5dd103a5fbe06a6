"""Command line: ``fastgw run|check|plan|reload|demo|version``. Parses arguments and hands
over; nothing else."""

from __future__ import annotations

import argparse
import sys

from . import __version__

CONFIG_HELP = "configuration file (.yaml, .toml or .json)"
PIDFILE_HELP = "the running master's pidfile (default: the config's pidfile setting)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastgw", description="HTTP/1.1 reverse proxy and API gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the gateway")
    run.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    run.add_argument("--pidfile", help="write the master's pid here (overrides the config); "
                                       "the reload status goes to PIDFILE.status")
    check = commands.add_parser("check", help="validate a configuration file and summarize it")
    check.add_argument("-c", "--config", required=True, help=CONFIG_HELP)
    plan = commands.add_parser(
        "plan", help="show what reloading to a configuration file would change")
    plan.add_argument("-c", "--config", required=True, help="the new " + CONFIG_HELP)
    plan.add_argument("--against", metavar="OLD",
                      help="compare with this file instead of the running configuration")
    plan.add_argument("--pidfile", help=PIDFILE_HELP)
    reload = commands.add_parser(
        "reload", help="make the running gateway reload its file (SIGHUP) and wait for the outcome")
    reload.add_argument("--pidfile", help=PIDFILE_HELP)
    reload.add_argument("-c", "--config", help="read the pidfile setting from this file")
    reload.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the outcome (default: %(default)s)")
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
        from .proxy import implementation

        print(f"fastgw {__version__} (parser: {_core.IMPLEMENTATION}, "
              f"data path: {implementation()})")
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.listen)
    if args.command in ("reload", "plan"):
        from .operate import plan, reload

        return reload(args) if args.command == "reload" else plan(args)

    from .config import ConfigError, load_config_bytes, read_config_file

    try:
        data = read_config_file(args.config)
        config = load_config_bytes(data, args.config)
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

    return serve(config, args.config, data, args.pidfile or config.pidfile)

