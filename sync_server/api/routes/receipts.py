"""Pages for customers: the digital receipt (``/r/<sale_id>``) and unsubscribing from offers."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from shared.errors import NotFound
from sync_server.api.deps import DbDep
from sync_server.services import receipts
from sync_server.services.receipt_mail import receipt_html, receipt_view

router = APIRouter(tags=["receipts"])

_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
    '</head><body style="font-family:Helvetica,Arial,sans-serif;max-width:600px;'
    'margin:40px auto;padding:0 16px;color:#222;">{body}</body></html>'
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=title, body=body), status_code=status)


@router.get(
    "/r/{sale_id}",
    response_class=HTMLResponse,
    summary="The digital receipt of a sale (the link in receipt mails)",
    responses={404: {"description": "No such receipt", "content": {"text/html": {}}}},
)
async def digital_receipt(sale_id: UUID, db: DbDep) -> HTMLResponse:
    try:
        receipt = await run_in_threadpool(receipts.digital_receipt, db, sale_id)
    except NotFound:
        return _page("Receipt not found", "<h1>Receipt not found</h1>", 404)
    return HTMLResponse(receipt_html(receipt_view(receipt, receipt_link=None), page=True))


@router.get(
    "/unsubscribe/{email_id}",
    response_class=HTMLResponse,
    summary="Confirm unsubscribing from offers by email",
)
async def unsubscribe_form(email_id: UUID) -> HTMLResponse:
    # GET only shows a button: mail scanners follow links, and must not unsubscribe anyone.
    return _page(
        "Unsubscribe",
        "<h1>No more offers by email?</h1>"
        f'<form method="post" action="/unsubscribe/{email_id}">'
        '<button type="submit" style="font-size:18px;padding:10px 18px;">Unsubscribe</button>'
        "</form><p>Your receipts by email are not affected.</p>",
    )


@router.post(
    "/unsubscribe/{email_id}",
    response_class=HTMLResponse,
    summary="Unsubscribe from offers by email (RFC 8058 one-click)",
    responses={404: {"description": "No such mail", "content": {"text/html": {}}}},
)
async def unsubscribe(email_id: UUID, db: DbDep) -> HTMLResponse:
    try:
        await run_in_threadpool(receipts.unsubscribe, db, email_id)
    except NotFound:
        return _page("Unknown link", "<h1>This unsubscribe link is not known</h1>", 404)
    return _page(
        "Unsubscribed",
        "<h1>You are unsubscribed</h1><p>You will get no more offers by email.</p>",
    )
