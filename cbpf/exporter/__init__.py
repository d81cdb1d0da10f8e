"""cbpf export: serves BPF maps as Prometheus metrics.

    cbpf export CONFIG [--listen ADDR:PORT]        (or: python -m cbpf.exporter CONFIG)

CONFIG (YAML) names BPF objects to load and, for each, the maps to export as counters, gauges or histograms,
with labels decoded from the maps' keys. /metrics serves them in Prometheus' text format (through
prometheus_client), /healthz answers "ok". Needs the extra: pip install 'cbpf[exporter]'. See
docs/guide/prometheus.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from cbpf.exporter.config import DEFAULT_LISTEN, Config, ConfigError, ObjectConfig, load, parse, parse_listen

__all__ = ["DEFAULT_LISTEN", "Config", "ConfigError", "Exporter", "StartError", "load", "main", "make_server",
           "parse", "tool_object"]

PROG = "cbpf export"
EXIT_CONFIG = 2  # a mistake in the configuration (or the command line)
EXIT_RUNTIME = 1  # the configuration is right but the kernel or the system refused something


class StartError(Exception):
    """Something the configuration asks for could not be done at start (a source that does not compile)."""


def tool_object(name: str) -> Path:
    """The compiled object of a tool shipped in the package."""
    import cbpf

    return Path(cbpf.__file__).parent / "bpf" / f"{name}.bpf.o"


def _object_file(oc: ObjectConfig) -> Path | bytes:
    import cbpf

    if oc.tool is not None:
        path = tool_object(oc.tool)
        if not path.is_file():
            shipped = sorted(p.name[:-len(".bpf.o")] for p in path.parent.glob("*.bpf.o"))
            raise ConfigError(f"{oc.place.at('tool')}: cbpf ships no tool {oc.tool!r} (no {path}); shipped: "
                              f"{', '.join(shipped) or '(none)'}")
        return path
    if oc.source is not None:
        compile_c = getattr(cbpf, "compile", None)
        if compile_c is None:
            raise ConfigError(f"{oc.place.at('source')}: this cbpf cannot compile C (no cbpf.compile): "
                              f"compile {oc.source.name} with clang and give the object as `path:`")
        if not oc.source.is_file():
            raise ConfigError(f"{oc.place.at('source')}: no such file: {oc.source}")
        try:
            compiled = compile_c(oc.source)
        except Exception as e:  # noqa: BLE001 - cbpf.CompileError (an Exception), no compiler, no file
            raise StartError(f"{oc.place.at('source')}: {oc.source.name} did not compile: {e}") from None
        return bytes(compiled) if isinstance(compiled, (bytes, bytearray)) else Path(compiled)
    assert oc.path is not None
    if not oc.path.is_file():
        raise ConfigError(f"{oc.place.at('path')}: no such file: {oc.path}")
    return oc.path


def open_object(oc: ObjectConfig) -> Any:
    """Opens, configures (globals), loads and attaches the object of oc."""
    import cbpf

    obj = cbpf.Object(_object_file(oc), name=None, load=False)
    try:
        if oc.globals:
            if obj.legacy:
                raise ConfigError(f"{oc.place.at('globals')}: {obj.name!r} is a legacy object: it has no "
                                  "globals")
            globals_ = obj.globals
            for name, value in oc.globals.items():
                where = oc.place.at("globals." + name)
                if name not in globals_:
                    raise ConfigError(f"{where}: the object has no global variable {name!r}; its globals: "
                                      f"{', '.join(sorted(globals_)) or '(none)'}")
                try:
                    globals_[name] = value
                except (TypeError, ValueError, OverflowError, KeyError) as e:
                    raise ConfigError(f"{where}: {value!r} does not fit: {e}") from None
        obj.load()
        obj.attach()
    except BaseException:
        obj.close()
        raise
    return obj


class Exporter:
    """The open objects of a configuration and the collector that reads them; close() frees them all."""

    def __init__(self, config: Config) -> None:
        from prometheus_client import CollectorRegistry

        from cbpf.exporter.collector import Collector, ObjectMetrics

        self.config = config
        self.objects: list[Any] = []
        metrics = []
        try:
            for oc in config.objects:
                obj = open_object(oc)
                self.objects.append(obj)
                metrics.append(ObjectMetrics(oc, obj))
        except BaseException:
            self.close()
            raise
        self.collector = Collector(metrics)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def scrape(self, accept: str = "") -> bytes:
        """One scrape, in Prometheus' text format (or the format an HTTP Accept header asks for)."""
        from cbpf.exporter.exposition import render

        return render(self.registry, accept)[0]

    def wsgi_app(self) -> Callable[..., Iterable[bytes]]:
        from cbpf.exporter.exposition import metrics_app as make_metrics_app

        metrics_app = make_metrics_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/metrics":
                return metrics_app(environ, start_response)  # type: ignore[no-any-return]
            if path == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
                return [b"ok\n"]
            if path == "/":
                start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
                return [b'<html><body><h1>cbpf exporter</h1><p><a href="/metrics">/metrics</a> '
                        b'<a href="/healthz">/healthz</a></p></body></html>\n']
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics or /healthz\n"]

        return app

    def close(self) -> None:
        while self.objects:
            self.objects.pop().close()

    def __enter__(self) -> Exporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape on stderr would drown what matters


def make_server(app: Callable[..., Iterable[bytes]], host: str, port: int) -> WSGIServer:
    """A threaded WSGI server on host:port (IPv4 or IPv6): scrapes from several clients are answered at
    once."""
    import socketserver

    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True
        allow_reuse_address = True

    server = Server((host, port), _QuietHandler)
    server.set_app(app)
    return server


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Serve BPF maps as Prometheus metrics (see "
                                "docs/guide/prometheus.md).")
    p.add_argument("config", help="the configuration (YAML)")
    p.add_argument("--listen", metavar="ADDR:PORT", help=f"where to serve /metrics and /healthz (default: "
                   f"the config's `listen:`, else {DEFAULT_LISTEN}; port 0 picks a free port)")
    p.add_argument("--check", action="store_true",
                   help="check the configuration (and load the objects), then exit")
    p.add_argument("--once", action="store_true", help="print one scrape to standard output, then exit")
    return p


def _start(args: argparse.Namespace) -> tuple[Exporter, str, int]:
    config = load(args.config)
    try:
        host, port = parse_listen(args.listen or config.listen or DEFAULT_LISTEN)
    except ValueError as e:
        raise ConfigError(f"--listen: {e}") from None
    return Exporter(config), host, port


def main(argv: list[str] | None = None) -> int:
    """`cbpf export ...`: the exit status (0; 1 when the system refused something; 2 for a configuration
    mistake)."""
    args = _parser().parse_args(argv)
    try:
        exporter, host, port = _start(args)
    except ConfigError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except ImportError as e:
        print(f"{PROG}: {e.name or e} is missing: pip install 'cbpf[exporter]'", file=sys.stderr)
        return EXIT_RUNTIME
    except (OSError, StartError) as e:  # no privilege, a kernel without what the object needs, the verifier
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    config = exporter.config
    with exporter:
        if args.check:
            print(f"{PROG}: {args.config}: {len(config.objects)} object(s), "
                  f"{sum(len(o.metrics) for o in config.objects)} metric(s): ok", file=sys.stderr)
            return 0
        if args.once:
            sys.stdout.write(exporter.scrape().decode())
            return 0
        return _serve(exporter, host, port)


def _serve(exporter: Exporter, host: str, port: int) -> int:
    try:
        server = make_server(exporter.wsgi_app(), host, port)
    except OSError as e:
        print(f"{PROG}: cannot listen on {host}:{port}: {e.strerror}", file=sys.stderr)
        return EXIT_RUNTIME
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"{PROG}: serving http://{shown}:{bound_port}/metrics (pid {os.getpid()})", file=sys.stderr,
          flush=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for s, h in previous.items():
            signal.signal(s, h)
    return 0
