"""Bearer-token authorization for the service (an ASGI middleware) and its OpenAPI declaration.

Every request outside the public paths must carry `Authorization: Bearer
<token>` of an active key (`serving.api_keys`) whose scopes include the
route's: 401 with `WWW-Authenticate` without a token or with an unknown,
malformed or revoked one, 403 when the key lacks the scope (RFC 6750 section
3). A route not listed in `ROUTE_SCOPES` and not public needs `admin` (fail
closed: a new endpoint is protected until it is classified). The check runs
before the body is read; the key table is cached per worker and re-read when
its file changes.

Public: probes, metrics, the API docs, and the prefixes whose requests are
authenticated by other means (`/webhooks/`: provider signatures; `/u/`: signed
unsubscribe tokens). `/docs.json` is served with a bearer security scheme and
per-operation requirements added (OpenAPI 3.0.2, "Security Scheme Object").
"""
from __future__ import annotations

import json
from typing import Callable

from serving.api_keys import KeyTable

ROUTE_SCOPES: dict[str, str] = {
    "/decide": "send", "/score": "send", "/send_time": "send", "/rank_content": "send",
    "/choose_variant": "send", "/sent": "send", "/reward": "reward", "/reload": "admin",
}
DEFAULT_SCOPE = "admin"
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/", "/schema.json"})
PUBLIC_PREFIXES = ("/webhooks/", "/u/", "/static_content/")
SCHEME = "bearerAuth"
REALM = 'Bearer realm="inbox"'


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def required_scope(path: str) -> str | None:
    """The scope a request to `path` needs, None for a public path."""
    if is_public(path):
        return None
    return ROUTE_SCOPES.get(path.rstrip("/") or "/", DEFAULT_SCOPE)


def _json_error(status: int, message: str, challenge: str) -> tuple[dict, bytes]:
    body = json.dumps({"error": f"authorization: {message}", "field": "authorization"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"www-authenticate", challenge.encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}, body


def bearer_token(scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" and token.strip() else ""
    return None


class BearerAuthMiddleware:
    """401/403 before the app for a request without a key that holds the route's scope."""

    def __init__(self, app, data_dir=None, keys: KeyTable | None = None):
        self.app = app
        if keys is None:
            from inbox.settings import load_settings

            keys = KeyTable(data_dir or load_settings().data_dir)
        self.keys = keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        needed = required_scope(path)
        if needed is None:
            if path == "/docs.json":
                return await self.app(scope, receive, _rewriting_json(send, secure_openapi))
            return await self.app(scope, receive, send)
        token = bearer_token(scope)
        if token is None:
            return await _reply(send, 401, "a bearer token is required (Authorization: Bearer <key>)", REALM)
        key = self.keys.lookup(token)
        if key is None:
            return await _reply(send, 401, "unknown, malformed or revoked key",
                                f'{REALM}, error="invalid_token"')
        if needed not in key.scopes:
            return await _reply(send, 403, f"this key lacks the {needed!r} scope",
                                f'{REALM}, error="insufficient_scope", scope="{needed}"')
        scope.setdefault("state", {})["api_key_id"] = key.id
        return await self.app(scope, receive, send)


async def _reply(send, status: int, message: str, challenge: str) -> None:
    start, body = _json_error(status, message, challenge)
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _rewriting_json(send, transform: Callable[[dict], dict]):
    """A `send` that buffers a JSON response and passes on `transform(json)` (used for /docs.json only)."""
    start: dict = {}
    chunks: list[bytes] = []

    async def wrapped(message):
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            return await send(message)
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = json.dumps(transform(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped


ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "field": {"type": "string", "description": "the offending field"},
    "detail": {"description": "pydantic's list of validation errors (each with its `loc`)"}}}


EDGE_RESPONSES = (("413", "the request body is over the size limit"),
                  ("503", "not ready, or a store it needs is failing (see Retry-After)"))
SIGNED_PREFIX = "/webhooks/"


def secure_openapi(spec: dict) -> dict:
    """The spec with the bearer scheme, each operation's requirement (none for a public path), its 401/403
    answers (401 for a bad provider signature on a webhook), the 413/503 every route may give, and the
    error body the service really sends for 400/404."""
    spec.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "An API key from `inbox keys create --scope send|reward|admin`; scopes: "
                       "send (decide, score, send_time, rank_content, choose_variant, sent), reward, admin."}
    for path, item in spec.get("paths", {}).items():
        needed = required_scope(path)
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            answers = list(EDGE_RESPONSES)
            if needed is None:
                op["security"] = []
                if path.startswith(SIGNED_PREFIX):
                    answers.append(("401", "missing or invalid provider signature"))
            else:
                op["security"] = [{SCHEME: []}]
                op["description"] = (op.get("description") or "") + f"\n\nRequires an API key with scope `{needed}`."
                answers += [("401", "missing, unknown or revoked API key"),
                            ("403", f"the API key lacks the `{needed}` scope")]
            for status, what in answers:
                op["responses"].setdefault(status, {"description": what,
                                                    "content": {"application/json": {"schema": ERROR_SCHEMA}}})
            for status in ("400", "404"):  # BentoML declares `detail` a string; its 400s carry pydantic's list
                if status in op["responses"]:
                    op["responses"][status]["content"] = {"application/json": {"schema": ERROR_SCHEMA}}
    return spec
