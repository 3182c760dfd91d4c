"""The provider webhooks as a small ASGI app, mounted by the BentoML service under /webhooks.

    POST /webhooks/sendgrid   SendGrid Signed Event Webhook (JSON array of events)
    POST /webhooks/mailgun    Mailgun webhook (JSON object, HMAC in `signature`)
    POST /webhooks/ses        Amazon SES events through SNS (signed SNS message)

Signatures cover the raw bytes of a request, so the routes read the body
themselves (at most `max_bytes`, else 413) instead of a parsed model; the
routes and their request/response schemas appear in the service's OpenAPI
(BentoML merges a mounted FastAPI app's paths). No API key: each provider signs
its calls (`serving.webhook_receiver`). Mounted with the public
`@bentoml.asgi_app(app, path="/webhooks")`; `context()` returns this worker's
`(WebhookReceiver, allocator)`, or None while the service is not ready (503).
"""
from __future__ import annotations

from typing import Any, Callable

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from serving.schemas import WebhookResponse
from serving.webhook_receiver import WebhookError, WebhookReceiver

Context = Callable[[], "tuple[WebhookReceiver, Any] | None"]

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "field": {"type": "string"}}}
ERRORS = {
    400: "malformed body or a field of the wrong type (names the field)",
    401: "no valid provider signature, stale or replayed, or no key configured for the provider: nothing recorded",
    413: "body or event count over the limit",
    502: "an SNS subscription could not be confirmed (SubscribeURL unreachable)",
    503: "service not ready",
}
BODIES = {
    "sendgrid": ("SendGrid Signed Event Webhook: a JSON array of events; headers "
                 "X-Twilio-Email-Event-Webhook-Signature and -Timestamp (ECDSA P-256 over timestamp + body)",
                 {"type": "array", "items": {"type": "object"}}),
    "mailgun": ("Mailgun webhook: {\"signature\": {timestamp, token, signature}, \"event-data\": {...}} "
                "(HMAC-SHA256 of timestamp + token; each token accepted once)",
                {"type": "object", "properties": {"signature": {"type": "object"},
                                                  "event-data": {"type": "object"}}}),
    "ses": ("Amazon SES through SNS: a signed SNS message (Notification, SubscriptionConfirmation, "
            "UnsubscribeConfirmation) of an allow-listed topic",
            {"type": "object", "properties": {"Type": {"type": "string"}, "Message": {"type": "string"}}}),
}


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing (413) more than `max_bytes` before reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise WebhookError(413, "body", f"more than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise WebhookError(413, "body", f"more than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_webhook_app(context: Context) -> FastAPI:
    app = FastAPI(title="webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    def route(provider: str):
        summary, schema = BODIES[provider]

        async def receive(request: Request):
            ctx = context()
            if ctx is None:
                return JSONResponse(WebhookError(503, "service", "not ready").body(), status_code=503,
                                    headers={"Retry-After": "5"})
            receiver, allocator = ctx
            try:
                body = await read_body(request, receiver.limits.max_bytes)
                result = receiver.handle(provider, request.headers, body, allocator)
            except WebhookError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            return JSONResponse(result.model_dump())

        receive.__name__ = f"webhook_{provider}"
        app.add_api_route(
            f"/{provider}", receive, methods=["POST"], response_model=WebhookResponse, summary=summary,
            responses={code: {"description": why, "content": {"application/json": {"schema": _ERROR}}}
                       for code, why in ERRORS.items()},
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}})

    for provider in BODIES:
        route(provider)
    return app
