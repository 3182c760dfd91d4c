"""`serving.bentoml_fastpath`: BentoML with the per-request fixes answers exactly as without them
(responses, headers, validation errors, `/metrics` series, OpenAPI), and the same-task timeout keeps
BentoML's timeout behaviour."""
from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace

import pytest

from serving.bentoml_fastpath import FIXES, SameTaskTimeoutMiddleware, enabled_fixes

FEATURES = [0.1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def run_asgi(app, timeout: float):
    """Drive one HTTP request through `SameTaskTimeoutMiddleware(app)`; returns (status, body, messages)."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(SameTaskTimeoutMiddleware(app, timeout=timeout)(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, sent


async def slow_app(scope, receive, send):
    await asyncio.sleep(5)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})


async def streaming_app(scope, receive, send):
    """Starts its response at once, then takes longer than the timeout to finish it."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await asyncio.sleep(0.3)
    await send({"type": "http.response.body", "body": b"part ", "more_body": True})
    await asyncio.sleep(0.3)
    await send({"type": "http.response.body", "body": b"done"})


def test_timeout_answers_504_when_no_response_started():
    status, body, _ = run_asgi(slow_app, timeout=0.2)
    assert status == 504
    assert b"Not able to process the request in 0.2 seconds" in body


def test_timeout_stops_counting_once_the_response_started():
    status, body, _ = run_asgi(streaming_app, timeout=0.2)
    assert (status, body) == (200, b"part done")


def test_timeout_raised_by_the_app_itself_is_not_turned_into_504():
    async def failing(scope, receive, send):
        raise TimeoutError("from the app")

    with pytest.raises(TimeoutError, match="from the app"):
        run_asgi(failing, timeout=5)


def test_fix_selection_names_unknown_fixes():
    assert enabled_fixes({}) == FIXES
    assert enabled_fixes({"INBOX_BENTOML_FASTPATH": "0"}) == ()
    assert enabled_fixes({"INBOX_BENTOML_FASTPATH": "timeout, headers"}) == ("timeout", "headers")
    with pytest.raises(ValueError, match="INBOX_BENTOML_FASTPATH"):
        enabled_fixes({"INBOX_BENTOML_FASTPATH": "timeout,nope"})


def observe(url: str) -> dict:
    """Responses (status, headers, body) for good and bad input, other routes, and the metric series."""
    import httpx

    out = {}
    for name, path, body in [("ok", "/predict", {"features": FEATURES}), ("short", "/predict", {"features": [1]}),
                             ("type", "/predict", {"features": "x"}), ("missing", "/predict", {}),
                             ("unknown route", "/nope", {})]:
        r = httpx.post(url + path, json=body, timeout=30)
        out[name] = (r.status_code, sorted((k, v) for k, v in r.headers.items() if k not in ("date",)), r.text)
    out["openapi"] = httpx.get(url + "/docs.json").json()
    out["probes"] = (httpx.get(url + "/livez").status_code, httpx.get(url + "/readyz").status_code)
    metrics = httpx.get(url + "/metrics").text
    out["series"] = sorted(re.sub(r'pid="\d+",?', "", line.rsplit(" ", 1)[0]) for line in metrics.splitlines()
                           if line and not line.startswith("#"))
    out["counts"] = {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in metrics.splitlines()
                     if re.search(r"_(total|count)\{", line) and not re.search("/(metrics|readyz|livez)", line)}
    return out


@pytest.mark.server
@pytest.mark.slow
def test_bentoml_answers_the_same_with_and_without_the_fast_path(tmp_path):
    from benchmarks.serving_perf_app import ensure_model
    from serving.runner import start_service

    settings = SimpleNamespace(data_dir=tmp_path, tracking_uri=f"sqlite:///{tmp_path / 'unused.db'}",
                               artifact_root=tmp_path)
    model = ensure_model(tmp_path / "model.txt")
    seen = {}
    for fixes in ("0", ",".join(FIXES)):
        env = {"BENCH_PERF_MODEL": str(model), "INBOX_BENTOML_FASTPATH": fixes, "INBOX_SERVE_WORKERS": "1"}
        with start_service(settings, target="benchmarks.serving_perf_app:TunedPredictor", env=env,
                           timeout=120) as svc:
            seen[fixes] = observe(svc.url)
    plain, fast = seen.values()
    assert plain["ok"][0] == 200 and plain["short"][0] == 400 and "features" in plain["short"][2]
    for key in plain:
        assert fast[key] == plain[key], key
