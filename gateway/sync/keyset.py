"""Key-set reconciliation as one anti-join: which stored source keys the source no longer has.

A cursor source with ``reconcile_deletes`` finds deletes by comparing the
source's current key set with the source keys of its live records. Both sides
come as one Arrow string array, never a Python object per key:

- the source: ``Adapter.key_array()`` (the sql adapter on PostgreSQL: the key
  columns through ADBC's binary COPY, keyed exactly as its rows are), else
  ``keys()`` gathered into Arrow a slice at a time;
- the state store: ``fingerprints.live_source_keys`` (one ``group_concat`` over
  the covering index, split by Arrow).

The gone keys are the stored ones not in the source's set (``pyarrow.compute.is_in``,
in C). Neither side needs an order, so any key type and any number of key columns
take this way. The source's keys stay in the chunks they were read in (no
concatenated copy), and the stored keys are probed against one slice of them at a
time: a hash table over a whole key set cost about 45 bytes a key (45 MB at 1M
keys, on top of the arrays), one over a slice of at most PROBE_KEYS (or 1/PASSES of
the stored keys, whichever is more) stays a few MB, for at most PASSES probes of the
stored array. Memory is then the two arrays (about 11 bytes a key for 7-character
keys) and one slice's table. No key is called deleted unless it is absent from the
source's key set read after the cursor pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from gateway.adapters.base import Adapter
from gateway.store.fingerprints import live_source_keys

GATHER = 65536  # keys() turned into Arrow this many at a time
PROBE_KEYS = 65536  # source keys per hash table of the anti-join (see above)
PASSES = 16  # at most this many probes of the stored keys: larger key sets get larger slices


@dataclass(frozen=True)
class KeySet:
    """The source's current keys, and the stored live source keys missing from them."""

    current: pa.ChunkedArray
    gone: list[str]

    def present(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` the source still has."""
        asked = pa.array(list(keys), pa.string())
        return set(asked.filter(found_in(asked, self.current, PROBE_KEYS)).to_pylist())


def current_keys(adapter: Adapter) -> pa.ChunkedArray:
    """The source's current key set as string chunks (duplicates kept; they change nothing)."""
    got = adapter.key_array()
    if got is None:
        return gather(adapter.keys())
    return got if isinstance(got, pa.ChunkedArray) else pa.chunked_array([got], pa.string())


def gather(keys: Iterable[str]) -> pa.ChunkedArray:
    it: Iterator[str] = iter(keys)
    parts = []
    while piece := list(islice(it, GATHER)):
        parts.append(pa.array(piece, pa.string()))
    return pa.chunked_array(parts, pa.string())


def slices(keys: pa.ChunkedArray, size: int) -> Iterator[pa.Array]:
    """The chunks of `keys` cut into slices of at most `size` (views, not copies)."""
    for chunk in keys.chunks:
        for at in range(0, len(chunk), size):
            yield chunk.slice(at, size)


def found_in(asked: pa.Array, keys: pa.ChunkedArray, size: int) -> pa.Array:
    """A mask over `asked`: true where the key is among `keys`, looked up a slice of `size` at a time."""
    hit = pa.repeat(False, len(asked))
    for piece in slices(keys, size):
        hit = pc.or_(hit, pc.is_in(asked, value_set=piece))
    return hit


def missing(stored: pa.Array, current: pa.ChunkedArray) -> list[str]:
    """The keys of `stored` not in `current`, in `stored`'s order."""
    if not len(stored):
        return []
    size = max(PROBE_KEYS, -(-len(stored) // PASSES))
    return stored.filter(pc.invert(found_in(stored, current, size))).to_pylist()  # type: ignore[no-any-return]


def reconcile(adapter: Adapter, conn: Connection, source: str) -> KeySet:
    """Read the source's key set and the stored one side by side (the source's in a thread, on its own
    connection: ADBC and SQLite both read without holding the GIL); name the gone keys."""
    with ThreadPoolExecutor(1, thread_name_prefix=f"keys-{source}") as pool:
        reading = pool.submit(current_keys, adapter)
        stored = live_source_keys(conn, source)
        current = reading.result()
    return KeySet(current, missing(stored, current))
