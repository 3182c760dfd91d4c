"""Operations around the service: the demo loop waits for every worker after a reload; the contact-table switch."""
from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import pytest


def _publish(directory, worker: int, generation: int) -> None:
    (directory / f"worker-{worker}.json").write_text(json.dumps({"worker": worker, "generation": generation,
                                                                 "loaded": True}))


def test_waits_for_every_worker_then_returns(tmp_path, monkeypatch):
    from serving.demo_loop import _wait_for_generation
    from serving.worker_sync import server_dir

    monkeypatch.setenv("INBOX_SERVE_WORKERS", "2")
    settings, svc = SimpleNamespace(data_dir=tmp_path), SimpleNamespace(process=SimpleNamespace(pid=4242))
    directory = server_dir(tmp_path, 4242)
    directory.mkdir(parents=True)
    _publish(directory, 1, 3)
    _publish(directory, 2, 2)
    late = threading.Timer(0.8, _publish, (directory, 2, 3))
    late.start()
    started = time.monotonic()
    _wait_for_generation(settings, svc, 3, timeout=10)
    assert time.monotonic() - started >= 0.7  # returned only once worker 2 caught up
    late.join()
    with pytest.raises(TimeoutError, match="generation 4"):
        _wait_for_generation(settings, svc, 4, timeout=0.6)
