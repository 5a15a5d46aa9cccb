"""One's own notification subscriptions, on the account page: list, add, cancel.

The rules are ``server.notifications.subscriptions``: an operator gives an Apprise URL
(shown back only masked); everyone else picks events and gets e-mail at the address
an operator recorded for the account. Forms carry the CSRF token like every other.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from server.api.deps import CurrentUser, RowId, SessionDep
from server.notifications.events import EventKind
from server.notifications.subscriptions import (
    CONTRACTOR_KINDS,
    SubscriptionError,
    address_of,
    cancel,
    masked_email,
    subscribe,
    subscriptions,
)
from server.people.accounts import NotFound, Role
from server.regions import CITIES, REGIONS_ONLY
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)
TARGET = "/account/notifications"


@router.get(TARGET)
def notifications_page(page: PageDep, session: SessionDep, user: CurrentUser) -> Response:
    kinds = [k for k in EventKind if user.role is not Role.CONTRACTOR or k in CONTRACTOR_KINDS]
    email = address_of(session, user.id)
    return page.render(
        "account_notifications.html",
        subscriptions=subscriptions(session, user_id=user.id),
        kinds=kinds,
        regions=[*CITIES, *REGIONS_ONLY],
        email=masked_email(email) if email else None,
        takes_url=user.role is Role.OPERATOR,
    )


@router.post(TARGET)
def add_subscription(
    request: Request,
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    event: Annotated[str, Form(max_length=32)] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    region: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    mail = request.app.state.settings.notify_mail_url
    return page.act(
        session,
        TARGET,
        lambda: subscribe(
            session,
            user,
            event,
            by=user,
            now=datetime.now(UTC),
            url=url or None,
            mail_url=mail.get_secret_value() if mail else None,
            region=region or None,
        ),
        (SubscriptionError, NotFound),
        lambda sub: page.t("notify.subscribed", event=page.t.label("notify_kind", sub.event_kind)),
    )


@router.post(TARGET + "/{subscription_id}/cancel")
def cancel_subscription(
    page: PageDep, session: SessionDep, user: CurrentUser, subscription_id: RowId
) -> Response:
    return page.act(
        session,
        TARGET,
        lambda: cancel(session, subscription_id, by=user, now=datetime.now(UTC)),
        NotFound,
        lambda _: page.t("notify.cancelled", id=subscription_id),
    )
