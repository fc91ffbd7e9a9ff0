"""Key-set reconciliation as one anti-join: which stored source keys the source no longer has.

A cursor source with ``reconcile_deletes`` finds deletes by comparing the
source's current key set with the source keys of its live records. Both sides
come as one Arrow string array, never a Python object per key:

- the source: ``Adapter.key_array()`` (the sql adapter on PostgreSQL: the key
  columns through ADBC's binary COPY, keyed exactly as its rows are), else
  ``keys()`` gathered into Arrow a slice at a time;
- the state store: ``fingerprints.live_source_keys`` (one ``group_concat`` over
  the covering index, split by Arrow).

The gone keys are the stored ones not in the source's set (``pyarrow.compute.is_in``:
one hash table, in C). Neither side needs an order, so any key type and any number
of key columns take this way. Memory is the two arrays (about 11 bytes a key for
7-character keys). No key is called deleted unless it is absent from the source's
key set read after the cursor pass.
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


@dataclass(frozen=True)
class KeySet:
    """The source's current keys, and the stored live source keys missing from them."""

    current: pa.Array
    gone: list[str]

    def present(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` the source still has."""
        asked = pa.array(list(keys), pa.string())
        return set(asked.filter(pc.is_in(asked, value_set=self.current)).to_pylist())


def current_keys(adapter: Adapter) -> pa.Array:
    """The source's current key set as one string array (duplicates kept; they change nothing)."""
    got = adapter.key_array()
    return got if got is not None else gather(adapter.keys())


def gather(keys: Iterable[str]) -> pa.Array:
    it: Iterator[str] = iter(keys)
    parts = []
    while piece := list(islice(it, GATHER)):
        parts.append(pa.array(piece, pa.string()))
    return pa.concat_arrays(parts) if parts else pa.array([], pa.string())


def missing(stored: pa.Array, current: pa.Array) -> list[str]:
    """The keys of `stored` not in `current`, in `stored`'s order."""
    if not len(stored):
        return []
    return stored.filter(pc.invert(pc.is_in(stored, value_set=current))).to_pylist()  # type: ignore[no-any-return]


def reconcile(adapter: Adapter, conn: Connection, source: str) -> KeySet:
    """Read the source's key set and the stored one side by side (the source's in a thread, on its own
    connection: ADBC and SQLite both read without holding the GIL); name the gone keys."""
    with ThreadPoolExecutor(1, thread_name_prefix=f"keys-{source}") as pool:
        reading = pool.submit(current_keys, adapter)
        stored = live_source_keys(conn, source)
        current = reading.result()
    return KeySet(current, missing(stored, current))
