"""Mail that HQ sends for tills: the queue, the worker that drains it, and the SMTP connection.

Why HQ sends receipts, not the till: tills rarely have a mail route of their own, HQ holds the
consent and unsubscribe state and the sender identity (SPF, DKIM), and the outbox already brings
the request to HQ exactly once and keeps it through any outage (see docs/hardware.md).

The queue
---------
Ingest turns a ``receipt_email`` op into one ``mail_queue`` row keyed by the till's
``email_id`` (:func:`receipt_row`; a second op with the same id adds nothing). A row is
``pending`` until sent, then ``sent``; ``failed`` when the mail server refused the recipient or
the message for good (5xx), or after ``mail_max_attempts`` attempts. Failed rows stay in the
table with ``last_error``: nothing is deleted.

The worker
----------
:func:`send_due` runs in every server process (``create_app`` starts it when ``mail_enabled``):

1. *Claim* up to ``limit`` due rows in one short write transaction by moving their
   ``next_attempt_at`` past a lease and counting the attempt. On PostgreSQL the rows are picked
   ``FOR UPDATE SKIP LOCKED``, so processes sharing the database never claim the same row; on
   SQLite the single writer serializes claims. A process that dies mid-send leaves the lease to
   expire, and the row is tried again.
2. *Send* each claimed mail outside any transaction (a slow mail server holds no lock), rendered
   at send time so consent withdrawn in the meantime is honoured.
3. *Mark* the row ``sent`` right after the SMTP transaction returns. The window between the two
   (a crash right there) is the only way a mail can go out twice, and then it is the same
   message with the same ``Message-ID``, which receivers drop as a duplicate.

A temporary failure (the mail server down or answering 4xx) reschedules the row after an
exponential backoff (``mail_retry_initial_s`` doubling up to ``mail_retry_max_s``) and ends the
batch: the rest of it is put back for the same time without counting an attempt, so a dead
server is not hammered once per mail. A mail that cannot even be built (a bug, a damaged row)
backs off on its own and the batch goes on.
"""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shared.errors import MailError
from shared.identifiers import Identifier
from shared.protocol import ReceiptEmail
from shared.wire import utc_now
from sync_server.config import Settings
from sync_server.db.engine import Database
from sync_server.db.schema import (
    consent_events,
    mail_queue,
    order_lines,
    orders,
    products,
    profiles,
    recommendation_lists,
)
from sync_server.services import identity
from sync_server.services.receipt_mail import (
    MarketingBlock,
    marketing_block,
    message_id_for,
    receipt_message,
)

__all__ = [
    "DEFAULT_PORTS",
    "MailRefused",
    "Mailer",
    "SmtpMailer",
    "base_url",
    "consents_of",
    "customer_for_email",
    "marketing_for",
    "message_for",
    "receipt_row",
    "retry_delay_s",
    "send_due",
]

log = logging.getLogger(__name__)

#: The SMTP port when ``smtp_port`` is unset, by ``smtp_security``.
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
#: Mails claimed per batch.
BATCH = 10
#: Days of sales behind the store's bestsellers in the marketing block.
BESTSELLER_DAYS = 30


class MailRefused(MailError):
    """The mail server refused this message or recipient for good (5xx): retrying cannot help."""


class Mailer(Protocol):
    """Sends one message; raises :class:`MailError` (:class:`MailRefused` when final)."""

    def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    """One SMTP session per message over smtplib: plain, STARTTLS or TLS, with optional AUTH."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port or DEFAULT_PORTS[settings.smtp_security],
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout=settings.smtp_timeout_s,
        )

    def __repr__(self) -> str:
        return f"SmtpMailer({self.security}://{self.host}:{self.port})"

    def send(self, message: EmailMessage) -> None:
        where = f"{self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                if self.security == "starttls":
                    # Refused (SMTPNotSupportedError) rather than sent in clear text.
                    smtp.starttls(context=ssl.create_default_context())
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(
                f"{to}: {code} {_text(msg)}" for to, (code, msg) in exc.recipients.items()
            )
            if all(code >= 500 for code in codes):
                raise MailRefused(f"The mail server {where} refused the recipient: {text}") from exc
            raise MailError(f"The mail server {where} deferred the recipient: {text}") from exc
        except smtplib.SMTPDataError as exc:
            if exc.smtp_code >= 500:
                raise MailRefused(
                    f"The mail server {where} refused the message: "
                    f"{exc.smtp_code} {_text(exc.smtp_error)}"
                ) from exc
            raise MailError(
                f"The mail server {where} deferred the message: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise MailError(
                f"The mail server {where} refused the login of {self.username!r}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}; check OMNITILL_SMTP_USERNAME and "
                "OMNITILL_SMTP_PASSWORD"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailError(
                f"The mail server {where} does not offer STARTTLS; use smtp_security=ssl or, for "
                "a local relay only, none"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailError(
                f"The mail server {where} answered {exc.smtp_code} {_text(exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailError(f"The mail server {where} cannot be reached: {_reason(exc)}") from exc

    def _connect(self) -> smtplib.SMTP:
        local = socket.getfqdn()
        if self.security == "ssl":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=local,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        return smtplib.SMTP(self.host, self.port, local_hostname=local, timeout=self.timeout)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The queue


def receipt_row(email: ReceiptEmail, *, now: datetime) -> dict[str, Any]:
    """The ``mail_queue`` row of a receipt email (ingest inserts it, ignoring a known id)."""
    return {
        "email_id": email.email_id,
        "message_id": message_id_for(email.email_id),
        "to_address": email.address,
        "kind": "receipt",
        "payload": email.model_dump_json(by_alias=True),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


@dataclass(frozen=True, slots=True)
class _Claimed:
    email_id: UUID
    attempts: int
    payload: str


def retry_delay_s(attempts: int, *, initial_s: float, max_s: float) -> float:
    """Wait after the ``attempts``-th failed attempt: ``initial_s`` doubling, at most ``max_s``."""
    return float(min(max_s, initial_s * 2 ** min(max(attempts - 1, 0), 40)))


def _claim(conn: Connection, *, limit: int, now: datetime, lease: timedelta) -> list[_Claimed]:
    pick = (
        sa.select(mail_queue.c.email_id)
        .where(mail_queue.c.status == "pending", mail_queue.c.next_attempt_at <= now)
        .order_by(mail_queue.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    rows = conn.execute(
        mail_queue.update()
        .where(mail_queue.c.email_id.in_(pick.scalar_subquery()))
        .values(next_attempt_at=now + lease, attempts=mail_queue.c.attempts + 1)
        .returning(
            mail_queue.c.email_id,
            mail_queue.c.attempts,
            mail_queue.c.payload,
            mail_queue.c.created_at,
        )
    ).all()
    rows = sorted(rows, key=lambda r: (r.created_at, str(r.email_id)))  # RETURNING has no order
    return [_Claimed(UUID(str(r.email_id)), int(r.attempts), str(r.payload)) for r in rows]


def base_url(settings: Settings) -> str:
    """Where links in mails point: ``public_url``, else the address the server listens on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def send_due(
    db: Database,
    settings: Settings,
    mailer: Mailer | None = None,
    *,
    limit: int = BATCH,
    clock: Callable[[], datetime] = utc_now,
) -> bool:
    """Send the mail that is due; True when a full batch was claimed (more may be waiting)."""
    mailer = mailer or SmtpMailer.from_settings(settings)
    now = clock()
    lease = timedelta(seconds=max(60.0, settings.smtp_timeout_s * 2 * limit))
    with db.write() as conn:
        claimed = _claim(conn, limit=limit, now=now, lease=lease)
    for index, item in enumerate(claimed):
        try:
            message = message_for(db, settings, item.payload)
            mailer.send(message)
        except MailRefused as exc:
            log.warning("mail %s refused for good: %s", item.email_id, exc.message)
            _mark(db, item.email_id, status="failed", error=exc.message)
            continue
        except MailError as exc:
            # The mail server is down or busy: the rest of the batch would fail the same way.
            _retry_later(db, settings, item, exc.message, rest=claimed[index + 1 :], clock=clock)
            return False
        except Exception as exc:
            # A mail that cannot be built (a bug, a damaged row) must not hold up the others.
            log.exception("mail %s could not be built or sent", item.email_id)
            error = f"{type(exc).__name__}: {exc}"
            _retry_later(db, settings, item, error, rest=[], clock=clock)
            continue
        _mark(db, item.email_id, status="sent", error=None, sent_at=clock())
        log.info("mail %s sent (attempt %d)", item.email_id, item.attempts)
    return len(claimed) == limit


def _mark(
    db: Database,
    email_id: UUID,
    *,
    status: str,
    error: str | None,
    sent_at: datetime | None = None,
) -> None:
    with db.write() as conn:
        conn.execute(
            mail_queue.update()
            .where(mail_queue.c.email_id == email_id)
            .values(status=status, last_error=error, sent_at=sent_at)
        )


def _retry_later(
    db: Database,
    settings: Settings,
    item: _Claimed,
    error: str,
    *,
    rest: list[_Claimed],
    clock: Callable[[], datetime],
) -> None:
    now = clock()
    delay = retry_delay_s(
        item.attempts, initial_s=settings.mail_retry_initial_s, max_s=settings.mail_retry_max_s
    )
    when = now + timedelta(seconds=delay)
    with db.write() as conn:
        if item.attempts >= settings.mail_max_attempts:
            log.error("mail %s failed after %d attempts: %s", item.email_id, item.attempts, error)
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.email_id == item.email_id)
                .values(status="failed", last_error=error)
            )
        else:
            log.warning(
                "mail %s not sent (attempt %d): %s; next try in %.0f s",
                item.email_id,
                item.attempts,
                error,
                delay,
            )
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.email_id == item.email_id)
                .values(next_attempt_at=when, last_error=error)
            )
        if rest:
            # Not tried: the attempt claimed for them does not count.
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.email_id.in_([r.email_id for r in rest]))
                .values(next_attempt_at=when, attempts=mail_queue.c.attempts - 1)
            )


# ---------------------------------------------------------------------------------------------
# Building a message


def message_for(db: Database, settings: Settings, payload: str) -> EmailMessage:
    """The message of a queued receipt mail, with marketing when HQ's consent allows it."""
    email = ReceiptEmail.model_validate_json(payload)
    base = base_url(settings)
    with db.read() as conn:
        marketing = marketing_for(
            conn, email, unsubscribe_url=f"{base}/unsubscribe/{email.email_id}"
        )
    return receipt_message(
        email.receipt,
        email_id=email.email_id,
        to=email.address,
        mail_from=settings.mail_from,
        date=email.at,
        receipt_link=f"{base}/r/{email.sale_id}",
        marketing=marketing,
    )


def customer_for_email(conn: Connection, email: ReceiptEmail) -> UUID | None:
    """The customer a receipt mail is for: the till's customer id, else the address's owner."""
    if email.customer_id is not None:
        row = conn.execute(
            sa.select(profiles.c.customer_id, profiles.c.erased_at).where(
                profiles.c.profile_id == email.customer_id
            )
        ).first()
        if row is not None and row.erased_at is None:
            return UUID(str(row.customer_id))
    return identity.find_customer(conn, Identifier("email", email.address))


def consents_of(conn: Connection, customer: UUID) -> dict[str, bool]:
    """The newest consent decision per channel of a customer (over all its profiles)."""
    members = sa.select(profiles.c.profile_id).where(
        profiles.c.customer_id == customer, profiles.c.erased_at.is_(None)
    )
    newest: dict[str, bool] = {}
    for row in conn.execute(
        sa.select(consent_events.c.channel, consent_events.c.granted)
        .where(consent_events.c.profile_id.in_(members.scalar_subquery()))
        .order_by(consent_events.c.at, consent_events.c.id)
    ):
        newest[row.channel] = bool(row.granted)
    return newest


def marketing_for(
    conn: Connection, email: ReceiptEmail, *, unsubscribe_url: str
) -> MarketingBlock | None:
    """The marketing block for this mail, or None without ``marketing_email`` consent.

    Items are the customer's personal recommendations when they also consented to
    ``profiling``, else the store's bestsellers of the last 30 days; never what is on the
    receipt or among its suggestions.
    """
    customer = customer_for_email(conn, email)
    if customer is None:
        return None
    consents = consents_of(conn, customer)
    if not consents.get("marketing_email", False):
        return None
    receipt = email.receipt
    exclude = {s.sku for s in receipt.suggestions} | set(
        conn.execute(
            sa.select(order_lines.c.sku).where(order_lines.c.order_id == email.sale_id)
        ).scalars()
    )
    candidates: list[str] = []
    if consents.get("profiling", False):
        personal = conn.execute(
            sa.select(recommendation_lists.c.data).where(
                recommendation_lists.c.kind == "personal",
                recommendation_lists.c.key == str(customer),
            )
        ).scalar_one_or_none()
        if personal:
            candidates = [item["sku"] for item in json.loads(personal).get("items", [])]
    if not candidates:
        since = email.at - timedelta(days=BESTSELLER_DAYS)
        candidates = list(
            conn.execute(
                sa.select(order_lines.c.sku)
                .join(orders, orders.c.order_id == order_lines.c.order_id)
                .where(orders.c.store_id == receipt.store.store_id, orders.c.created_at >= since)
                .group_by(order_lines.c.sku)
                .order_by(sa.func.sum(order_lines.c.quantity).desc(), order_lines.c.sku)
                .limit(20)
            ).scalars()
        )
    wanted = [sku for sku in dict.fromkeys(candidates) if sku not in exclude][:10]
    if not wanted:
        return None
    found = {
        row.sku: json.loads(row.data)
        for row in conn.execute(
            sa.select(products.c.sku, products.c.data).where(
                products.c.sku.in_(wanted), products.c.deleted_at.is_(None)
            )
        )
    }
    items = [
        (str(found[sku].get("name", sku)), int(found[sku]["price_minor"]))
        for sku in wanted
        if sku in found
        and found[sku].get("active", True)
        and found[sku].get("currency", receipt.currency) == receipt.currency
        and isinstance(found[sku].get("price_minor"), int)
    ]
    return marketing_block(
        items,
        currency=receipt.currency,
        locale=receipt.store.locale,
        unsubscribe_url=unsubscribe_url,
    )
