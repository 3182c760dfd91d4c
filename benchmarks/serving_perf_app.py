"""The same one-row LightGBM predict behind a bare Starlette app and behind BentoML.

Used by `benchmarks/bench_serving.py` (and by the serving tests) to measure
what BentoML's defaults cost and what our serving configuration recovers.

- `floor_app`: bare Starlette + uvicorn, the floor.
- `DefaultPredictor`: `@bentoml.service` with defaults and a sync API, as the
  issue reported it.
- `TunedPredictor`: the same predict as an `async def` API under
  `serving.config.SERVICE_CONFIG` (the configuration the real service ships),
  plus `serving.config.tune_process()` (GC).

The env var `BENCH_PERF_CONFIG` (JSON) overrides the tuned config, so the
benchmark can switch single causes on and off (ablation). The model is a small
LightGBM booster written by `ensure_model()` to `BENCH_PERF_MODEL`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

N_FEATURES = 20


def ensure_model(path: str | os.PathLike) -> Path:
    """Train (once) a 100-tree LightGBM classifier on synthetic rows and save it."""
    import lightgbm as lgb

    path = Path(path)
    if path.exists():
        return path
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5_000, N_FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] - x[:, 2] + rng.normal(size=len(x)) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 31, "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, y),
        num_boost_round=100,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    booster.save_model(str(tmp))
    os.replace(tmp, path)
    return path


def _load_booster():
    import lightgbm as lgb

    return lgb.Booster(model_file=os.environ["BENCH_PERF_MODEL"], params={"num_threads": 1})


def _predict_one(booster, features: list[float]) -> float:
    row = np.asarray(features, dtype=np.float64).reshape(1, -1)
    return float(booster.predict(row, num_threads=1)[0])


def _log_gc_pauses(threshold_s: float = 0.01) -> None:
    """Print every garbage collection slower than `threshold_s` (diagnosis of the stalls)."""
    import gc
    import sys
    import time

    started = {"modules": set(sys.modules)}

    def callback(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            took = time.perf_counter() - started.pop("t")
            if os.environ.get("BENCH_PERF_GC_TYPES") == "1" and info["generation"] == 2:
                import collections

                counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
                prev = started.get("counts", counts)
                started["counts"] = counts
                print("GC growth:", (counts - prev).most_common(8), file=sys.stderr, flush=True)
                new = sorted({m.split(".")[0] for m in set(sys.modules) - started["modules"]})
                print("GC new modules:", new, file=sys.stderr, flush=True)
            if took >= threshold_s:
                print(f"GC gen{info['generation']} {took * 1e3:.0f} ms collected={info['collected']} "
                      f"objects={len(gc.get_objects())}", file=sys.stderr, flush=True)

    gc.callbacks.append(callback)


# --- the floor: bare Starlette -------------------------------------------------
def _make_floor_app():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    booster = _load_booster()

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"probability": _predict_one(booster, body["features"])})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"])])


class _LazyFloor:
    """ASGI app built on first use, so importing this module never loads a model."""

    _app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            type(self)._app = _make_floor_app()
        await self._app(scope, receive, send)


floor_app = _LazyFloor()


# --- BentoML, defaults as shipped ---------------------------------------------
import bentoml  # noqa: E402  (after the floor so the floor never pays BentoML's import in spirit)
from pydantic import BaseModel, Field  # noqa: E402


class Prediction(BaseModel):
    """A model (not a dict): BentoML builds a JSON schema per response for root types."""

    probability: float


@bentoml.service
class DefaultPredictor:
    def __init__(self) -> None:
        self.booster = _load_booster()

    @bentoml.api
    def predict(self, features: list[float] = Field(min_length=N_FEATURES, max_length=N_FEATURES)) -> dict:
        return {"probability": _predict_one(self.booster, features)}


@bentoml.service
class BatchingPredictor:
    """The adaptive-batching variant the issue tried (`batchable=True`, a 20 ms latency budget)."""

    def __init__(self) -> None:
        self.booster = _load_booster()

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.predict(rows, num_threads=1)


# --- BentoML, as our serving package configures it ----------------------------
def _tuned_config() -> dict:
    from serving.config import SERVICE_CONFIG

    override = os.environ.get("BENCH_PERF_CONFIG")
    return json.loads(override) if override else SERVICE_CONFIG


@bentoml.service(**_tuned_config())
class TunedPredictor:
    def __init__(self) -> None:
        from serving.config import tune_process

        if os.environ.get("BENCH_PERF_GC_LOG") == "1":
            _log_gc_pauses()

        self.booster = _load_booster()
        _predict_one(self.booster, [0.0] * N_FEATURES)  # warm-up before freezing
        if os.environ.get("BENCH_PERF_TUNE_PROCESS", "1") == "1":
            tune_process()

    @bentoml.api
    async def predict(self, features: list[float] = Field(min_length=N_FEATURES, max_length=N_FEATURES)) -> Prediction:
        return Prediction(probability=_predict_one(self.booster, features))


# --- the floor for `decide`: bare Starlette over the same ServingState -----------
def _make_decide_floor():
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from inbox.settings import load_settings
    from serving.decide import decide
    from serving.predict import default_window
    from serving.state import ServingState
    from serving.warmup import warm_up

    state = ServingState.load(load_settings())
    warm_up(state)  # as the service at start-up: the floor does the same work

    async def handle(request: Request) -> Response:
        body = await request.json()
        start, end = default_window()
        try:
            out = decide(state, body["campaign_id"], body["contact_ids"], start, end, k=body.get("k", 3))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return Response(out.model_dump_json(), media_type="application/json")

    return Starlette(routes=[Route("/decide", handle, methods=["POST"])])


class _LazyDecideFloor:
    """Built on the first ASGI call (uvicorn's lifespan start-up, in every worker); writes
    `$BENCH_READY_DIR/ready-<pid>` once loaded, so the benchmark can wait for all workers."""

    _app = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            type(self)._app = _make_decide_floor()
            if os.environ.get("BENCH_READY_DIR"):
                ready = Path(os.environ["BENCH_READY_DIR"])
                ready.mkdir(parents=True, exist_ok=True)
                (ready / f"ready-{os.getpid()}").touch()
        await self._app(scope, receive, send)


decide_floor_app = _LazyDecideFloor()
