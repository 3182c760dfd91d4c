"""Per-request work BentoML 1.4.40 repeats although its result never changes, done once.

Measured with py-spy on a worker under `wrk` (README, "Serving performance";
`benchmarks/bench_serving.py --part predict` has one ablation row per fix). Each
fix keeps what the client sees (routes, validation errors, response headers,
`/metrics`, `/readyz`, OpenAPI) and is applied only to the BentoML version it was
read from (`BENTOML_VERSION`); on another version nothing is patched (logged).

- `bound APIs` (`cache_api_methods`): the server looks up `getattr(instance,
  api_name).local` per request; `APIMethod.__get__` then builds a new wrapper and
  calls `inspect.signature` on the method every time. The bound wrapper is
  stored on the instance once (APIMethod is a non-data descriptor, so the
  instance attribute wins).
- `input fields`: the server reads `input_data.model_fields` on the parsed
  request model, an instance access pydantic 2.11+ deprecates, so every request
  builds and filters a `PydanticDeprecatedSince211` warning; the API input models
  get a `model_fields` that answers the same dict without it.
- `headers`: `ServiceAppFactory._add_response_headers` is wrapped by simple_di's
  `@inject`, which binds its signature (`inspect.Signature.bind_partial`) on
  every call to look up a constant (the log format); the same function with the
  constant looked up once.
- `tracing middleware`: with `tracing.excluded_urls` matching every URL (our
  configuration), the OpenTelemetry middleware only builds the URL and tests the
  regex per request; it is left out of the stack when its exclude list matches
  any URL.
- `timeout`: BentoML's `TimeoutMiddleware` runs each request in a second task
  and schedules a timer it never cancels; this one runs the request in its own
  task under `asyncio.timeout` (cancelled when the response starts), with the
  same 504 answer when no response started in time.
- `metrics labels`: the Prometheus middleware resolves four labelled children
  (`.labels(...)`: validation, a lock, a dict lookup) per request; they are
  looked up once per endpoint and status code (for at most 256 paths, beyond
  which it does what BentoML does). Same metrics, same names and labels.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os

BENTOML_VERSION = "1.4.40"
FIXES = ("bound_apis", "input_fields", "headers", "tracing_middleware", "timeout", "metrics_labels")
DISABLE_ENV = "INBOX_BENTOML_FASTPATH"  # "0": none; or a comma list of the fixes to apply (ablation)

logger = logging.getLogger("inbox.serving")
_applied: set[str] = set()


def enabled_fixes(env=os.environ) -> tuple[str, ...]:
    value = env.get(DISABLE_ENV, "").strip()
    if not value:
        return FIXES
    if value == "0":
        return ()
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = set(chosen) - set(FIXES)
    if unknown:
        raise ValueError(f"{DISABLE_ENV}: unknown fix(es) {sorted(unknown)}; known: {', '.join(FIXES)}")
    return chosen


def _version_matches() -> bool:
    import bentoml

    if bentoml.__version__ != BENTOML_VERSION:
        logger.warning("bentoml %s is not %s: per-request fast paths not applied", bentoml.__version__,
                       BENTOML_VERSION)
        return False
    return True


def install() -> tuple[str, ...]:
    """Apply the class-level fixes (before BentoML builds the ASGI app); returns those applied."""
    fixes = [f for f in enabled_fixes() if f != "bound_apis"]
    if not fixes or not _version_matches():
        return ()
    from _bentoml_impl.server.app import ServiceAppFactory

    if "headers" in fixes and "headers" not in _applied:
        ServiceAppFactory._add_response_headers = _add_response_headers
        _applied.add("headers")
    if ({"tracing_middleware", "timeout", "metrics_labels"} & set(fixes)) and "middlewares" not in _applied:
        original = ServiceAppFactory.middlewares

        def middlewares(self):
            return _lighter_middlewares(original.fget(self), set(fixes))

        ServiceAppFactory.middlewares = property(middlewares)
        _applied.add("middlewares")
    return tuple(fixes)


def cache_api_methods(instance) -> list[str]:
    """Per service instance: store each API's bound wrapper on it, and give the API input models a
    warning-free `model_fields` (see the module docstring). Returns the API names."""
    fixes = {"bound_apis", "input_fields"} & set(enabled_fixes())
    if not fixes or not _version_matches():
        return []
    from _bentoml_sdk.method import APIMethod

    names = []
    for name in dir(type(instance)):
        method = getattr(type(instance), name, None)
        if not isinstance(method, APIMethod):
            continue
        if "bound_apis" in fixes:
            instance.__dict__[name] = method.__get__(instance, type(instance))
        if "input_fields" in fixes:
            method.input_spec.model_fields = _ModelFields()
        names.append(name)
    return names


# --- the replacements ------------------------------------------------------------
class _ModelFields:
    """`Model.model_fields` for the class and its instances alike, without pydantic's deprecation warning."""

    def __get__(self, instance, owner):
        return owner.__pydantic_fields__


_CONSTANTS: tuple[dict, bool] | None = None  # (log format, http.response.trace_id): configuration, read once


def _add_response_headers(self, resp) -> None:
    """`ServiceAppFactory._add_response_headers` of BentoML 1.4.40 without `@inject` per call."""
    global _CONSTANTS
    from bentoml._internal.context import trace_context

    if _CONSTANTS is None:
        from bentoml._internal.container import BentoMLContainer

        _CONSTANTS = (BentoMLContainer.logging_formatting.get(), bool(BentoMLContainer.http.response.trace_id.get()))
    log_format, with_trace_id = _CONSTANTS
    resp.headers["Server"] = f"BentoML Service/{self.service.name}"
    if trace_context.request_id is not None:
        resp.headers["X-BentoML-Request-ID"] = format(trace_context.request_id, log_format["span_id"])
    if with_trace_id and trace_context.trace_id is not None:
        resp.headers["X-BentoML-Trace-ID"] = format(trace_context.trace_id, log_format["trace_id"])


def _excludes_everything(middleware) -> bool:
    excluded = middleware.kwargs.get("excluded_urls")
    probes = ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/decide", "https://example.org/any/path?x=1")
    return excluded is not None and all(excluded.url_disabled(url) for url in probes)


def _lighter_middlewares(middlewares: list, fixes: set[str]) -> list:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    out = []
    for m in middlewares:
        if "tracing_middleware" in fixes and m.cls is OpenTelemetryMiddleware and _excludes_everything(m):
            continue
        if "timeout" in fixes and m.cls is TimeoutMiddleware:
            m.cls = SameTaskTimeoutMiddleware
        if "metrics_labels" in fixes and m.cls is RunnerTrafficMetricsMiddleware:
            m.cls = _cached_labels_metrics_middleware()
        out.append(m)
    return out


@functools.cache
def _cached_labels_metrics_middleware():
    from timeit import default_timer

    from bentoml._internal.context import server_context
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    class CachedLabelsTrafficMetrics(RunnerTrafficMetricsMiddleware):
        """BentoML's RunnerTrafficMetricsMiddleware for HTTP requests with the labelled children cached
        (websockets and anything else go to the original)."""

        MAX_ENDPOINTS = 256

        def _labels(self, endpoint: str) -> dict | None:
            cache = self.__dict__.setdefault("_children", {})
            hit = cache.get(endpoint)
            if hit is None and len(cache) < self.MAX_ENDPOINTS:
                names = dict(service_name=server_context.bento_name, service_version=server_context.bento_version,
                             runner_name=server_context.service_name)
                skipped = endpoint.startswith(tuple(self.skip_paths))
                hit = cache[endpoint] = {
                    "names": names,
                    "last": None if skipped else self.metrics_last_request_timestamp.labels(**names),
                    "in_progress": self.metrics_request_in_progress.labels(endpoint=endpoint, **names),
                }
            return hit

        def _by_status(self, endpoint: str, labels: dict, status: int):
            hit = labels.get(status)
            if hit is None:
                names = dict(endpoint=endpoint, http_response_code=status, **labels["names"])
                hit = labels[status] = (self.metrics_request_total.labels(**names),
                                        self.metrics_request_duration.labels(**names))
            return hit

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http" or scope["path"] == "/metrics":
                return await super().__call__(scope, receive, send)
            if not self._is_setup:
                self._setup()
            endpoint = scope["path"]
            labels = self._labels(endpoint)
            if labels is None:  # more distinct paths than the cache holds: BentoML's own code
                return await super().__call__(scope, receive, send)
            if labels["last"] is not None:
                labels["last"].set_to_current_time()
            start_time = default_timer()
            status_code = 0

            async def wrapped_send(message) -> None:
                nonlocal status_code
                kind = message["type"]
                if kind == "http.response.start":
                    status_code = message["status"]
                elif kind == "http.response.body" and not message.get("more_body"):
                    total, duration = self._by_status(endpoint, labels, status_code)
                    total.inc()
                    duration.observe(max(default_timer() - start_time, 0))
                await send(message)

            with labels["in_progress"].track_inprogress():
                await self.app(scope, receive, wrapped_send)

    return CachedLabelsTrafficMetrics


class SameTaskTimeoutMiddleware:
    """504 when a request has not started its response within `timeout` seconds (as BentoML's
    TimeoutMiddleware), in the request's own task, with the timer cancelled once the response starts."""

    def __init__(self, app, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        from starlette.responses import JSONResponse

        deadline = asyncio.timeout(self.timeout)
        started = False

        async def _send(message) -> None:
            nonlocal started
            if not started:
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, _send)
        except TimeoutError:
            if started or not deadline.expired():  # raised by the app itself
                raise
            resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                                status_code=504)
            await resp(scope, receive, send)
