"""One-shot messages after a form: the POST redirects (303) and the next page shows it.

The message travels in a short-lived cookie signed with the app's key (so another
site or a sibling sub-domain cannot plant text on our pages), is shown once by
:meth:`server.web.render.Page.render`, and deleted with that response.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Final, Literal

from fastapi import Request
from fastapi.responses import RedirectResponse

from server.api.auth import Auth

FLASH_COOKIE: Final = "epr_flash"
MAX_TEXT: Final = 600
"""Characters kept of a message (a cookie holds about 4 kB; library errors are short)."""


@dataclass(frozen=True, slots=True)
class Flash:
    kind: Literal["ok", "error"]
    text: str


def encode(auth: Auth, flash: Flash) -> str:
    data = json.dumps({"k": flash.kind, "t": flash.text[:MAX_TEXT]}, ensure_ascii=False)
    return auth.signer.sign(base64.urlsafe_b64encode(data.encode()).decode("ascii"))


def decode(auth: Auth, cookie: str | None) -> Flash | None:
    """The message in the cookie, or None when absent, forged or unreadable."""
    value = auth.signer.unsign(cookie) if cookie else None
    if value is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))
        kind, text = data["k"], str(data["t"])
    except (ValueError, KeyError, TypeError):
        return None
    return Flash(kind, text) if kind in ("ok", "error") else None


def redirect(
    request: Request, target: str, kind: Literal["ok", "error"], text: str
) -> RedirectResponse:
    """303 to ``target`` (a local path) carrying one message for the next page."""
    auth: Auth = request.app.state.auth
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        encode(auth, Flash(kind, text)),
        max_age=120,
        **auth.cookie_options(request, "lax"),
    )
    return response
