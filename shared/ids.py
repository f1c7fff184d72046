"""IDs for things that cross the network: made where the thing is made, time-ordered.

Every sale, return, op and event gets its UUID on the till that made it, so a till that is
offline for a day still makes IDs nobody else will ever make. They are UUID version 7
(RFC 9562): 48 bits of Unix milliseconds, then random bits. The random part keeps them unique
without coordination, like version 4; the time prefix makes the IDs a till makes, and those all
tills make around the same moment, sort close together. HQ stores them as primary keys, and a
B-tree fed keys near its right edge touches a few hot pages per commit where random keys touch
a different page per row: at 5,000 sales a second that is most of the difference between
writing a few hundred kilobytes per commit and writing megabytes.

The timestamp inside is the till's clock and is never trusted as the time of the sale (the
sale carries ``created_at``); a till with a wrong clock only loses the locality, not
uniqueness.
"""

from __future__ import annotations

import uuid

from uuid6 import uuid7


def new_id() -> uuid.UUID:
    """A new time-ordered UUID (version 7), as a plain :class:`uuid.UUID`."""
    return uuid.UUID(int=uuid7().int)
