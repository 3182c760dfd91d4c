"""Robust edges of the real service (issue 13): malformed JSON is a 4xx, a 69 MB body a 413 on every
route, 20,000 scanned paths do not grow /metrics, and a client error is one INFO log line without body,
traceback or email address."""
from __future__ import annotations

import time

import pytest

from serving_provider_samples import CAMPAIGN

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.mark.parametrize("path", ["/decide", "/reward", "/score"])
@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,                                  # deep nesting
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b"{oops", b'{"campaign_id": "\xff"}', b"", b"null", b"[1, 2]",     # invalid JSON, bad UTF-8, wrong shape
    b'{"decision_id": "x", "reward": NaN, "event_id": "e"}',
])
def test_malformed_json_gets_4xx(client, path, body):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (path, body[:40], r.status_code, r.text[:300])


@pytest.mark.parametrize("path, authorized", [("/decide", True), ("/reward", True), ("/webhooks/sendgrid", False)])
def test_a_69_mb_body_gets_413_and_the_service_keeps_serving(client, anonymous_client, path, authorized):
    http = client if authorized else anonymous_client
    r = http.post(path, content=b"[" + b"1," * (69 * 2**19) + b"1]", headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["field"] == "body", r.text[:200]

    def chunks():  # no Content-Length: refused once the limit is passed
        for _ in range(69):
            yield b" " * 2**20

    r = http.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/readyz").status_code == 200
    ok = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [1]})
    assert ok.status_code == 200, ok.text[:300]


def _series(metrics_text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in metrics_text.splitlines() if line and not line.startswith("#")}


async def _scan(port: int, paths: list[str], connections: int = 16) -> list[int]:
    """GET each path over `connections` keep-alive connections (a minimal HTTP/1.1 client: a scanner
    sends far more requests per second than an HTTP library's client would)."""
    import asyncio

    todo, statuses = list(reversed(paths)), []

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while todo:
                writer.write(f"GET {todo.pop()} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                statuses.append(int(head.split(b" ", 2)[1]))
                length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                              if line.startswith(b"content-length:"))
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


def test_scanning_20000_paths_does_not_grow_metrics(client, service):
    import asyncio

    asyncio.run(_scan(service.port, ["/warm-up/0.php", "/warm-up/1"], 2))
    before = client.get("/metrics").text
    started = time.monotonic()
    statuses = asyncio.run(_scan(service.port, [f"/scan/{i}/{'wp-login.php' if i % 2 else '.env'}"
                                                for i in range(20_000)]))
    seconds = time.monotonic() - started
    after = client.get("/metrics").text
    print(f"20,000 scanned paths in {seconds:.1f} s; /metrics {len(before):,} -> {len(after):,} bytes, "
          f"{len(_series(before))} -> {len(_series(after))} series")
    assert len(statuses) == 20_000 and set(statuses) == {401}  # unknown paths need a key like any other
    assert _series(after) == _series(before), sorted(_series(after) - _series(before))[:5]
    assert len(after) < len(before) * 1.1 and "/scan/" not in after
    assert any('endpoint="/{unmatched}"' in line and 'http_response_code="401"' in line
               for line in after.splitlines() if line.startswith("bentoml_service_request_total"))


def test_client_errors_log_one_info_line_without_body_traceback_or_email(client, service):
    offset = service.log_path.stat().st_size
    address = "leak.check+13@example.org"
    r = client.post("/decide", json={"campaign_id": CAMPAIGN, "contact_ids": [address]})
    assert r.status_code == 400
    r = client.post("/score", content=b'{"contact_ids": ["' + address.encode() + b'"',
                    headers={"content-type": "application/json"})
    assert r.status_code == 400
    client.post("/webhooks/mailgun", json={"event-data": {"event": "clicked", "recipient": address}})
    time.sleep(0.5)  # the workers' log lines reach the file
    text = service.log_path.read_text(errors="replace")
    assert address not in text and "example.org" not in text
    new = text[offset:]
    assert "Traceback" not in new and "[ERROR]" not in new, new[-2000:]
    assert "[INFO]" in new and "Exception on /decide [POST]" in new
