"""/metrics: the registry written in the format the scraper asks for (Prometheus text 0.0.4 or OpenMetrics),
as prometheus_client negotiates and writes it, with the large families (collector.SeriesFamily) written in
bulk."""

from __future__ import annotations

import gzip
from typing import Any, Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from cbpf.exporter.collector import SeriesFamily

_EOF = b"# EOF\n"


class _One:
    """A registry of one family, for prometheus_client's writers."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Any]:
        yield self.metric


def render(registry: CollectorRegistry, accept: str = "") -> tuple[bytes, str]:
    """(the body, its content type) of one scrape, for a request's Accept header."""
    encoder, content_type = choose_encoder(accept)
    openmetrics = content_type.startswith("application/openmetrics-text")
    parts = []
    for metric in registry.collect():
        if isinstance(metric, SeriesFamily):
            head = encoder(_One(metric.header()))
            parts.append(head[:-len(_EOF)] if openmetrics else head)
            parts.append(metric.lines().encode())
        else:
            body = encoder(_One(metric))
            parts.append(body[:-len(_EOF)] if openmetrics else body)
    if openmetrics:
        parts.append(_EOF)
    return b"".join(parts), content_type


def metrics_app(registry: CollectorRegistry) -> Any:
    """The WSGI application of /metrics: the format the Accept header asks for, gzip when accepted (level 1: a
    large scrape compresses in a fraction of the time level 9 takes, to nearly the same size)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body, content_type = render(registry, environ.get("HTTP_ACCEPT", ""))
        headers = [("Content-Type", content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    return app
