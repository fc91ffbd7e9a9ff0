"""Key-set reconciliation without a million Python objects: which stored source keys are gone.

A cursor source with ``reconcile_deletes`` finds deletes by comparing the
source's current key set with the live records' source keys. The general way
(ChangeWriter.load_current_keys) streams every key through SQLAlchemy into a
TEMP table, which at a million rows costs seconds of CPU. For a PostgreSQL table
keyed by one integer or text column this module instead asks each side for its
whole key list as one sorted text value:

- the source: ``Adapter.sorted_key_text()`` (the sql adapter: ``string_agg(CAST(k AS TEXT), E'\\n' ORDER BY CAST(k AS TEXT) COLLATE "C")``)
  (the server sorts; we receive ~7 bytes per key). For these column types the
  server's text is exactly the adapter's key (``str`` of the value);
- the state store: ``group_concat`` of the live source keys in index order
  (SQLite's BINARY collation).

Both are compared block by block with set operations (in C). The merge is only
correct when both lists are sorted the same way, so each block is checked to be
in Python's string order (UTF-8 byte order, which is what "C" and BINARY give
for UTF-8); a key list out of that order, a key containing a newline, a NULL key
or any other surprise (counted pieces differ from count(*)) makes the caller
fall back to the general way. Either way no key is called deleted unless it is
absent from the source's key list read after the cursor pass.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from itertools import filterfalse
from typing import Any

from sqlalchemy.engine import Connection

from gateway.adapters.base import Adapter
from gateway.store.fingerprints import stored_key_text

BLOCK = 8192  # keys per compared block


class Unordered(Exception):
    """A key list was not in the expected order: use the general reconciliation."""


def _blocks(joined: str, count: int) -> Iterator[list[str]]:
    """The keys of a newline-joined sorted list, BLOCK at a time, checked to be in order and counted."""
    seen, pos, end, last = 0, 0, len(joined), None
    while pos < end:
        cut = joined.find("\n", pos + 16 * BLOCK)
        cut = end if cut < 0 else cut
        part = joined[pos:cut].split("\n")
        pos = cut + 1
        # sorted() of an ordered list is one linear pass in C; any disorder shows as inequality.
        if part != sorted(part) or (last is not None and part[0] < last):
            raise Unordered("key list not in byte order")
        last = part[-1]
        seen += len(part)
        yield part
    if seen != count:
        raise Unordered(f"{seen} keys in the list, count(*) says {count}")


def missing_keys(adapter: Adapter, conn: Connection, source: str) -> list[str] | None:
    """Live stored source keys of `source` that the source no longer has; None when this fast way
    does not apply (the caller uses the general reconciliation). Raises nothing for order problems."""
    got = adapter.sorted_key_text()
    if got is None:
        return None
    src_n, src_text = got
    st_n, st_text = stored_key_text(conn, source)
    try:
        return _merge(_blocks(st_text, st_n), _blocks(src_text, src_n))
    except Unordered:
        return None


def _merge(stored: Iterator[list[str]], current: Iterator[list[str]]) -> list[str]:
    """Keys of the sorted `stored` blocks absent from the sorted `current` blocks."""
    out: list[str] = []
    window: list[str] = []  # current keys above the previous stored block's last key
    more = True
    for block in stored:
        hi = block[-1]
        while more and (not window or window[-1] <= hi):
            nxt: Any = next(current, None)
            if nxt is None:
                more = False
            else:
                window.extend(nxt)
        here = set(window[: bisect_right(window, hi)])
        # Keys equal to hi stay: the next stored block may start with hi again (a repeated key).
        window = window[bisect_left(window, hi) :]
        out.extend(filterfalse(here.__contains__, block))  # in C: no Python step per key
    return out
