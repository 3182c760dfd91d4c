"""How the service is configured for low latency.

Each setting answers a cause measured in `benchmarks/bench_serving.py` against
a bare Starlette app doing the same predict (README, "Serving performance"):

- `traffic.timeout`: BentoML's TimeoutMiddleware schedules `loop.call_later`
  for every request and never cancels it; each pending handle keeps the
  request's `contextvars.Context` (with its tracing span) alive for the whole
  timeout (60 s by default), so a service at 1,000 req/s carries ~60k dead
  requests, and the periodic full (gen 2) garbage collections walking them are
  the 100-300 ms stalls. A short timeout bounds that, `tune_process` removes it.
- `tracing.excluded_urls`: BentoML's sampler records every span even at
  sample rate 0 (`TraceIdRatioBasedAlwaysRecording`): ~5 SDK spans a request.
  Excluding the routes skips the OpenTelemetry middleware's work entirely;
  set `tracing` in a deployment's BentoML config to trace again.
- `logging.access.enabled`: one formatted log line a request through the
  logging machinery; we log decisions ourselves.
- `metrics` stay on (Prometheus `/metrics` is part of the contract).
"""
from __future__ import annotations

import os

REQUEST_TIMEOUT_S = 10.0

SERVICE_CONFIG: dict = {
    "workers": int(os.environ.get("INBOX_SERVE_WORKERS", "1")),
    "traffic": {"timeout": REQUEST_TIMEOUT_S},
    "logging": {"access": {"enabled": False}},
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
