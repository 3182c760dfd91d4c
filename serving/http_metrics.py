"""Request metrics labelled by route template, and the `/metrics` endpoint that serves them.

BentoML's own traffic middleware labels every series with the raw request
path, so each scanned path (`/wp-login.php`, `/.env`, ...) adds series that
live as long as the server. Its metrics are therefore switched off in the
service configuration and this middleware counts instead: a path is labelled
with itself only when it is one of the service's routes, a mounted prefix's
paths share one label per prefix, and every other path is `/{unmatched}`, so
the number of series is bounded by the routes, whatever is requested.

The series keep BentoML's names and labels (`bentoml_service_request_total`,
`bentoml_service_request_duration_seconds`; endpoint, http_response_code,
service_name, service_version). Workers share them through Prometheus's
multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, set by `bentoml serve` under
the server's own BENTOML_HOME, see `serving.runner`).
"""
from __future__ import annotations

import os
import time
from typing import Iterable

UNMATCHED = "/{unmatched}"
NAMESPACE = "bentoml_service"
INFRA_ROUTES = ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/", "/schema.json")
MOUNTED_PREFIXES = ("/webhooks/", "/u/", "/static_content/")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def route_label(path: str, routes: frozenset[str]) -> str:
    """The bounded label of a request path: the route itself, `<prefix>{path}` under a mounted prefix,
    else `/{unmatched}`."""
    if path in routes:
        return path
    for prefix in MOUNTED_PREFIXES:
        if path.startswith(prefix):
            return prefix + "{path}"
    return UNMATCHED


class _Metrics:
    def __init__(self, service_name: str):
        from prometheus_client import Counter, Histogram

        labels = ["endpoint", "service_name", "service_version", "http_response_code"]
        self.total = Counter("request_total", "Total number of HTTP requests", labels, namespace=NAMESPACE)
        self.duration = Histogram("request_duration_seconds", "API HTTP request duration in seconds", labels,
                                  namespace=NAMESPACE, buckets=BUCKETS)
        self.service = (service_name, "not available")

    def observe(self, route: str, status: int, seconds: float) -> None:
        labels = (route, *self.service, str(status))
        self.total.labels(*labels).inc()
        self.duration.labels(*labels).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """Every worker's series (multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` is set) in text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


class RouteMetricsMiddleware:
    """Counts each request under its route template and answers `GET /metrics`."""

    _metrics: _Metrics | None = None

    def __init__(self, app, routes: Iterable[str] = (), service_name: str = "InboxService"):
        self.app = app
        self.routes = frozenset([*INFRA_ROUTES, *routes])
        if RouteMetricsMiddleware._metrics is None:  # one set of series per process
            RouteMetricsMiddleware._metrics = _Metrics(service_name)
        self.metrics = RouteMetricsMiddleware._metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/metrics" and scope["method"] in ("GET", "HEAD"):
            body, content_type = exposition()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode()),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})
            return
        started = time.perf_counter()
        status = 500

        async def counting_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.observe(route_label(path, self.routes), status, time.perf_counter() - started)
