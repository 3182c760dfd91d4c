"""How the service is configured for low latency.

Each setting answers a cause measured in `benchmarks/bench_serving.py` against
a bare Starlette app doing the same predict (README, "Serving performance"):

- `traffic.timeout`: BentoML's TimeoutMiddleware schedules `loop.call_later`
  for every request and never cancels it; each pending handle keeps the
  request's `contextvars.Context` (with its tracing span) alive for the whole
  timeout (60 s by default), so a busy service carries tens of thousands of dead
  requests, and the periodic full (gen 2) garbage collections walking them are
  the latency stalls (bench_serving.py shows them). A short timeout bounds that, and `tune_process`
  freezes what start-up allocated.
- `tracing.excluded_urls`: BentoML's sampler records every span even at
  sample rate 0 (`TraceIdRatioBasedAlwaysRecording`): ~5 SDK spans a request.
  Excluding the routes skips the OpenTelemetry middleware's work entirely;
  set `tracing` in a deployment's BentoML config to trace again.
- `logging.access.enabled`: one formatted log line a request through the
  logging machinery; we log decisions ourselves.
- `metrics.enabled: False`: BentoML's traffic metrics label each series with
  the raw path (one series per scanned path, forever); `serving.http_metrics`
  counts by route template instead and serves Prometheus `/metrics` itself.
- `workers`: one per core, at most `DEFAULT_MAX_WORKERS` (each loads the models,
  nothing per contact); `INBOX_SERVE_WORKERS` overrides. `/reload` reaches every worker
  (`serving.worker_sync`).
"""
from __future__ import annotations

import os

REQUEST_TIMEOUT_S = 10.0
DEFAULT_MAX_WORKERS = 2
WORKERS_ENV = "INBOX_SERVE_WORKERS"


def serve_workers(env=os.environ) -> int:
    """Worker processes of `bentoml serve`: `INBOX_SERVE_WORKERS`, else one per usable core (at most 2)."""
    value = env.get(WORKERS_ENV, "").strip()
    if not value:
        return max(1, min(DEFAULT_MAX_WORKERS, len(os.sched_getaffinity(0))))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{WORKERS_ENV}: a positive number of workers, got {value!r}")
    return int(value)


SERVICE_CONFIG: dict = {
    "workers": serve_workers(),
    "traffic": {"timeout": REQUEST_TIMEOUT_S},
    "logging": {"access": {"enabled": False}},
    "metrics": {"enabled": False},
    "tracing": {"excluded_urls": [".*"]},
}


# Modules BentoML 1.4.40 imports lazily while serving its first requests;
# imported before `gc.freeze()` so that they are frozen too.
LAZY_REQUEST_IMPORTS = ("httpx", "pandas", "pyarrow", "_strptime", "starlette.responses", "starlette.background")


def tune_process() -> None:
    """Per-worker fixes applied once the service has loaded its models.

    `gc.freeze()` moves everything alive after start-up (imported modules,
    models, ~150k objects) out of the collector's reach, so a full collection
    only walks objects created while serving.
    """
    import gc
    import importlib

    for module in LAZY_REQUEST_IMPORTS:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
