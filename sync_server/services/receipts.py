"""Digital receipts and the unsubscribe link of receipt mails.

``/r/<sale_id>`` (the link on every emailed receipt, unless the till printed its own
``receipt_url``) shows the sale as HQ stored it, rebuilt with
:func:`shared.receipt.receipt_from_sale` and the store's settings. The sale id is a random UUID
made at the till, known only to whoever holds the receipt. The page leaves out the customer's
name and points: a receipt link gets forwarded.

``/unsubscribe/<email_id>`` withdraws the ``marketing_email`` consent of the customer a mail
was sent to: a consent event (source ``unsubscribe``) is appended at HQ, the customer's card is
rebuilt, and the change reaches the tills on the feed. The mail's id, a random UUID, is the
token: only the recipient has it.
"""

from __future__ import annotations

import json
import logging
from uuid import UUID

import sqlalchemy as sa

from shared.catalogue import Store
from shared.errors import NotFound
from shared.protocol import ReceiptEmail
from shared.receipt import Receipt, receipt_from_sale
from shared.sale import Sale
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import consent_events, mail_queue, orders, stores
from sync_server.services import identity, mailer

log = logging.getLogger(__name__)


def digital_receipt(db: Database, sale_id: UUID) -> Receipt:
    """The receipt of a sale HQ holds; :class:`NotFound` when it has none."""
    with db.read() as conn:
        row = conn.execute(
            sa.select(orders.c.payload, orders.c.store_id).where(
                orders.c.order_id == sale_id, orders.c.channel == "store"
            )
        ).first()
        if row is None or row.payload is None:
            raise NotFound(f"No receipt {sale_id}")
        store_data = conn.execute(
            sa.select(stores.c.data).where(stores.c.store_id == row.store_id)
        ).scalar_one_or_none()
    sale = Sale.model_validate_json(row.payload)
    store = (
        Store.model_validate(json.loads(store_data))
        if store_data
        else Store(store_id=sale.store_id, name=sale.store_id)
    )
    return receipt_from_sale(sale, store)


def unsubscribe(db: Database, email_id: UUID) -> bool:
    """Withdraw marketing consent for the recipient of a mail; False if nobody was found."""
    with db.write() as conn:
        payload = conn.execute(
            sa.select(mail_queue.c.payload).where(mail_queue.c.email_id == email_id)
        ).scalar_one_or_none()
        if payload is None:
            raise NotFound(f"No mail {email_id}")
        email = ReceiptEmail.model_validate_json(payload)
        customer = mailer.customer_for_email(conn, email)
        if customer is None:
            return False
        conn.execute(
            consent_events.insert().values(
                profile_id=customer,
                channel="marketing_email",
                granted=False,
                at=utc_now(),
                source="unsubscribe",
            )
        )
        identity.mark_dirty(conn, {customer})
    log.info("customer %s unsubscribed from marketing email", customer)
    return True
