"""One SQLite commit that does not wait for the disk, on a pooled connection set to synchronous=FULL.

The hub's nonce and the gateway's receipt are both safe to lose in a power cut
(a lost nonce belongs to a request that left nothing durable; a lost receipt is
fetched again by batch id), and both commit on connections whose every other
commit must flush. Only the write-ahead log makes that safe: any later flushed
commit flushes the earlier one too, and the database cannot be corrupted by it;
with another journal mode nothing is relaxed. SQLite cannot change
`synchronous` inside a transaction, so it is set before the transaction and put
back before the connection returns to the pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_WAL = "sqlite_wal"  # connection-record info key: is this database in WAL mode (asked once per connection)


@contextmanager
def unflushed_commits(raw: Any) -> Iterator[bool]:
    """Within: commits on `raw` (a SQLite PoolProxiedConnection) skip the flush wait; yields whether they do.

    A connection whose FULL could not be restored is invalidated: it must not serve a write that has to flush.
    """
    info = raw.info
    wal = info.get(_WAL)
    if wal is None:
        cur = raw.cursor()
        try:
            cur.execute("PRAGMA journal_mode")
            wal = info[_WAL] = str(cur.fetchone()[0]).lower() == "wal"
        finally:
            cur.close()
    if not wal:
        yield False
        return
    raw.cursor().execute("PRAGMA synchronous=NORMAL").close()
    try:
        yield True
    finally:
        try:
            raw.cursor().execute("PRAGMA synchronous=FULL").close()
        except BaseException:
            raw.invalidate()
            raise
