"""Pure ASGI middleware: the request body limit (413 before the handler reads anything) and request metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attnrec.serving.metrics import ServiceMetrics


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413.

    A ``Content-Length`` above the limit is refused before a byte of the body is read. Otherwise the body is
    read here, counting bytes as they stream in (chunked uploads have no length), and refused as soon as the
    count passes the limit; a body within the limit is handed to the app unchanged.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: ServiceMetrics | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def _too_large(self, send: Send) -> None:
        if self.metrics is not None:
            self.metrics.rejected.labels(reason="body_too_large").inc()
        await _send_json(
            send,
            413,
            {"detail": f"request body larger than {self.max_bytes} bytes"},
            [(b"connection", b"close")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_json(send, 400, {"detail": "invalid Content-Length header"}, [])
                    return
                if length < 0:
                    await _send_json(send, 400, {"detail": "invalid Content-Length header"}, [])
                    return
        if length is not None and length > self.max_bytes:
            await self._too_large(send)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") and not length:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class MetricsMiddleware:
    """Count requests and time them per route template (``/users/{user_id}/history``, never the raw path).

    Requests served by a mounted app (the ``/docs-assets`` files) are labelled with the mount's prefix, which the
    router appends to ``root_path``; requests that match nothing are ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        root_path = str(scope.get("root_path", ""))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            mounted = str(scope.get("root_path", ""))
            mount = mounted[len(root_path) :] if mounted != root_path and mounted.startswith(root_path) else None
            label = getattr(route, "path", None) or mount or "unmatched"
            method = scope.get("method", "")
            method = method if method in _METHODS else "OTHER"  # bounded label values
            self.metrics.requests.labels(method=method, route=label, status=str(status)).inc()
            self.metrics.latency.labels(method=method, route=label).observe(time.perf_counter() - start)
