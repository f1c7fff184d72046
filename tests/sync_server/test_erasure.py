"""Erasure also removes receipts queued or sent by email to the customer."""

from __future__ import annotations

import uuid
from pathlib import Path

import sqlalchemy as sa

from shared.identifiers import Identifier
from shared.wire import utc_now
from sync_server.db.engine import Database
from sync_server.db.schema import mail_queue
from sync_server.services import identity


def test_erasure_deletes_the_customers_mail(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'hq.db'}")
    db.migrate()
    maria, other = uuid.uuid4(), uuid.uuid4()
    now = utc_now()
    with db.write() as conn:
        identity.ensure_profile(
            conn, profile_id=maria, source="test", claims=[Identifier("email", "maria@example.com")]
        )
        identity.ensure_profile(
            conn, profile_id=other, source="test", claims=[Identifier("email", "jo@example.com")]
        )
        for address in ("maria@example.com", "jo@example.com"):
            email_id = uuid.uuid4()
            conn.execute(
                mail_queue.insert().values(
                    email_id=email_id,
                    message_id=f"<{email_id}@omnitill>",
                    to_address=address,
                    kind="receipt",
                    payload="{}",
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        identity.erase_customer(conn, maria)
    with db.read() as conn:
        left = conn.execute(sa.select(mail_queue.c.to_address)).scalars().all()
    assert left == ["jo@example.com"]
