"""Request body size limit: 413 for a body over `INBOX_MAX_BODY_BYTES` (default 2 MiB), on every route.

A declared `Content-Length` over the limit is refused before anything is
read; a chunked body is read up to the limit and refused as soon as it passes
it, so no route ever holds more than the limit of one request in memory. The
largest legitimate body (a `/decide` of 1,000 recipients, a SendGrid batch)
is far below the default. The body read here is handed on unchanged.
"""
from __future__ import annotations

import json
import os

ENV_VAR = "INBOX_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 2 * 1024 * 1024


def max_body_bytes(env=os.environ) -> int:
    value = env.get(ENV_VAR, "").strip()
    if not value:
        return DEFAULT_MAX_BODY
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_VAR}: a positive number of bytes, got {value!r}")
    return int(value)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": f"body: larger than the limit of {limit} bytes", "field": "body"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app, limit: int | None = None):
        self.app = app
        self.limit = limit or max_body_bytes()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:  # (h11 refuses a malformed one earlier)
                    return await _too_large(send, self.limit)
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away before sending its body
                return await self.app(scope, _replay([message], receive), send)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _too_large(send, self.limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive),
                              send)


def _replay(messages: list[dict], receive):
    async def replayed():
        return messages.pop(0) if messages else await receive()

    return replayed
