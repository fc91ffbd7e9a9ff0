"""A fingerprint pass compared with the stored digests as sets: one read of them, no write per unchanged row.

The row path (batchstep.RowPath) looks up each chunk's stored digests by source
key, marks every unchanged row's record seen (``checked_at``) and finds the
deletes as the records not seen since the pass began. Most rows of a pass are
unchanged, so that is two SQLite statements' worth of work per row. Here:

- the source's live (source key, record key, row hash) are read once, at the
  start of the pass, as Arrow, and sorted by source key;
- each chunk's keys are found by binary search (``pyarrow.compute.search_sorted``:
  no hash table of the whole store rebuilt per chunk); a row is unchanged when
  its key is stored exactly once, with its digest, for a record this pass has
  not written yet (once written, the stored digest is no longer the record's:
  the row is mapped, as the row path's fresh lookup would decide);
- every stored entry whose key a row of the pass had is covered; the source
  keys of the uncovered ones are the pass's deletes, resolved to the records
  they hold at the end (``ChangeWriter.delete_source_keys``), as the row path's
  ``checked_at`` scan finds them.

The pass always starts from the beginning (pipeline._extract), so this state
lives in memory only: a pass killed midway starts again with a fresh read.
Memory is the stored columns (about 45 bytes a record at 7-character keys) and
one covered position per row read.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from gateway.store import fingerprints


class PassDigests:
    """The stored digests of one source at the start of a fingerprint pass, and what the pass covered."""

    def __init__(self, stored: pa.Table) -> None:
        order = pc.sort_indices(stored["source_key"])
        self.keys: pa.Array = stored["source_key"].take(order).combine_chunks()
        self.record_keys: pa.Array = stored["record_key"].take(order).combine_chunks()
        self.digests: pa.Array = stored["row_hash_hex"].take(order).combine_chunks()  # hex: SQLite reads it out as text
        n = len(self.keys)
        if n > 1:  # a key stored for more than one live record is mapped, never taken as unchanged
            eq = pc.fill_null(pc.equal(self.keys.slice(1), self.keys.slice(0, n - 1)), False)
            no = pa.array([False])
            self.ambiguous = pc.or_(pa.concat_arrays([no, eq]), pa.concat_arrays([eq, no]))
        else:
            self.ambiguous = pa.array([False] * n)
        self._covered: list[pa.Array] = []
        self._written: list[str] = []  # record keys this pass wrote or deleted, as of the last chunk
        self._written_set: pa.Array | None = None
        self._pending: list[str] = []

    @classmethod
    def read(cls, conn: Connection, source: str, record_type: str) -> PassDigests:
        return cls(fingerprints.live_digests(conn, source, record_type))

    def compare(self, keys: Sequence[str], digests: Sequence[bytes]) -> tuple[list[int], list[tuple[int, str]]]:
        """(indices of the rows to map; (index, record key) of the unchanged ones), as batchstep.changed_rows
        gives them from a fresh lookup. Covers the stored entries of every key."""
        n = len(self.keys)
        if n == 0 or not keys:
            return list(range(len(keys))), []
        k = pa.array(keys, pa.string())
        at = pc.min_element_wise(pc.search_sorted(self.keys, k), pa.scalar(n - 1, pa.uint64()))
        found = pc.fill_null(pc.equal(self.keys.take(at), k), False)
        self._cover(k, at, found)
        same = pc.and_(found, pc.invert(self.ambiguous.take(at)))
        same = pc.and_(same, pc.fill_null(pc.equal(self.digests.take(at), pa.array([d.hex() for d in digests], pa.string())), False))
        rkeys = self.record_keys.take(at)
        if self._written_set is not None:
            same = pc.and_(same, pc.invert(pc.is_in(rkeys, value_set=self._written_set)))
        changed = pc.indices_nonzero(pc.invert(same))
        # A changed row's stored record is rewritten or deleted at this chunk's commit.
        self._pending += rkeys.filter(pc.and_(found, pc.invert(same))).to_pylist()
        kept = pc.indices_nonzero(same)
        return changed.to_pylist(), list(zip(kept.to_pylist(), rkeys.take(kept).to_pylist(), strict=True))

    def _cover(self, k: pa.Array, at: pa.Array, found: pa.Array) -> None:
        self._covered.append(at.filter(found))
        amb = pc.and_(found, self.ambiguous.take(at))
        if pc.any(amb).as_py():  # every entry of a key stored more than once (rare: search each of them)
            ks = k.filter(amb)
            lo = pc.search_sorted(self.keys, ks).to_pylist()
            hi = pc.search_sorted(self.keys, ks, side="right").to_pylist()
            self._covered.append(pa.array([p for a, b in zip(lo, hi, strict=True) for p in range(a, b)], pa.uint64()))

    def written(self, record_keys: Sequence[str]) -> None:
        """The chunk committed: these records (and the stored records of its changed rows) were written or
        deleted, so later rows naming them are mapped again rather than compared with their old digest."""
        added = list(record_keys) + self._pending
        self._pending = []
        if added:
            self._written += added
            self._written_set = pa.array(self._written, pa.string())

    def gone(self) -> list[str]:
        """The stored source keys no row of the pass had (each once)."""
        n = len(self.keys)
        if n == 0:
            return []
        covered = pa.concat_arrays(self._covered) if self._covered else pa.array([], pa.uint64())
        if len(pc.unique(covered)) == n:
            return []
        every = pa.array(range(n), pa.uint64())
        left = pc.invert(pc.is_in(every, value_set=covered))
        return pc.unique(self.keys.filter(left)).to_pylist()  # type: ignore[no-any-return]
