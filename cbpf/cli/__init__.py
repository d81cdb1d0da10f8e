"""The cbpf command: inspect and run BPF objects, and ready tools (top, execsnoop, opensnoop, biolatency, runqlat,
tcplife, profile). `python -m cbpf` is the same; with no arguments it runs `cbpf top` for 3 seconds.

Exit statuses: 0 done (Ctrl-C while running is the normal way to stop), 1 the kernel or the environment refused
(not root, no BTF, a missing tracepoint, a load error), 2 bad arguments (unknown --map, bad --set, no such file),
130 Ctrl-C before it ran, 141 stdout closed (| head).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, Callable

from cbpf.cli._common import INTERRUPTED, PIPE_CLOSED, USAGE, CliError

PROG = "cbpf"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # usage errors: status 2, one line, no traceback
        self.print_usage(sys.stderr)
        raise CliError(f"{self.prog}: {message}", USAGE)


def build_parser() -> argparse.ArgumentParser:
    from cbpf.cli import inspect as inspect_cmd
    from cbpf.cli import profile, run, tools

    parser = _Parser(prog=PROG, description="Inspect and run BPF objects; ready tools built on cbpf.",
                     epilog="With no command: cbpf top --duration 3.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, func: Callable[[argparse.Namespace], int], setup: Callable[[Any], None], text: str) -> None:
        p = sub.add_parser(name, help=text, description=text)
        setup(p)
        p.set_defaults(func=func)

    command("inspect", inspect_cmd.inspect, inspect_cmd.parser, "what an object holds: maps, programs, globals")
    command("run", run.run, run.parser, "boot an object and show its maps live")
    command("top", tools.top, tools.top_parser, "system calls per process, live")
    command("execsnoop", tools.execsnoop, tools.execsnoop_parser, "every exec, with its argv")
    command("opensnoop", tools.opensnoop, tools.opensnoop_parser, "every open, with path, flags and result")
    command("biolatency", tools.biolatency, lambda p: tools.hist_parser(p, disks=True),
            "block I/O latency histogram")
    command("runqlat", tools.runqlat, tools.hist_parser, "run-queue latency histogram")
    command("tcplife", tools.tcplife, tools.tcplife_parser, "TCP sessions with bytes and duration")
    command("profile", profile.profile, profile.parser, "CPU stack sampling, folded stacks and flame graph")
    export = sub.add_parser("export", help="serve maps as Prometheus metrics (cbpf[exporter])", add_help=False)
    export.add_argument("rest", nargs=argparse.REMAINDER)
    export.set_defaults(func=_export)
    return parser


def _version() -> str:
    import cbpf

    return f"cbpf {cbpf.__version__} (libbpf {cbpf.libbpf_version()})"


def _export(args: argparse.Namespace) -> int:
    hint = "cbpf export needs the exporter and its dependencies: pip install 'cbpf[exporter]'"
    try:
        from cbpf.exporter import main as exporter_main  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise CliError(f"{hint} ({e})") from None
    try:
        return int(exporter_main(list(args.rest)))
    except ModuleNotFoundError as e:  # an extra imported on first use
        raise CliError(f"{hint} ({e})") from None


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: programs detached, objects closed


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        argv = ["top", "--duration", "3"]
    elif argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["top", *argv]  # python -m cbpf -d 1 -n 5: the monitor's options, as before there were commands
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if argv[0] == "export":  # everything after it is the exporter's, --help included
            return _export(argparse.Namespace(rest=argv[1:]))
        args = build_parser().parse_args(argv)
        if getattr(args, "func", None) is None:
            build_parser().print_help()
            return USAGE
        return int(args.func(args))
    except CliError as e:
        message = str(e)
        sys.stderr.write(("" if message.startswith(PROG) else f"{PROG}: ") + message + "\n")
        return e.status
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # the reader went away (| head): nothing more to say, and no error from the interpreter flushing at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return PIPE_CLOSED
    finally:
        signal.signal(signal.SIGTERM, previous)
