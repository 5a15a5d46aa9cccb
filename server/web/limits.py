"""Upload size limits enforced before a request body is read.

FastAPI parses a multipart form — spooling its files to disk — before any route or
dependency runs, so a limit checked in the route bounds what is stored, not what is
read. This ASGI middleware refuses an upload to a limited path by its declared
``Content-Length`` before a byte of the body is read (413), and one without a length
(411); the server (uvicorn, h11) refuses a body longer than it declared.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send


class BodyLimit:
    """``limits``: path prefix -> most bytes a POST body there may declare."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int]) -> None:
        self.app = app
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            limit = next((n for p, n in self.limits.items() if path.startswith(p)), None)
            if limit is not None:
                declared = dict(scope["headers"]).get(b"content-length")
                if declared is None or not declared.isdigit():
                    await _refuse(send, 411, "an upload must declare its Content-Length")
                    return
                if int(declared) > limit:
                    await _refuse(send, 413, f"upload larger than {limit // (1024 * 1024)} MB")
                    return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
