"""A fingerprint pass compared with the stored digests as sets: one read of them, no write per unchanged row.

The row path (batchstep.RowPath) looks up each chunk's stored digests by source
key, marks every unchanged row's record seen (``checked_at``) and finds the
deletes as the records not seen since the pass began. Most rows of a pass are
unchanged, so that is two SQLite statements' worth of work per row. Here:

- the source's live (source key, row hash) are read once, at the start of the
  pass, as Arrow, and sorted by source key;
- each chunk's keys are found by binary search (``pyarrow.compute.search_sorted``:
  no hash table of the whole store rebuilt per chunk); a row is unchanged when
  its key is stored exactly once, with its digest, and this pass has not yet
  rewritten the key's record (then the stored digest is no longer the record's:
  the row is mapped, as the row path's fresh lookup would decide);
- every stored entry whose key a row of the pass had is covered; the source
  keys of the uncovered ones are the pass's deletes, resolved to the records
  they hold at the end (``ChangeWriter.delete_source_keys``), as the row path's
  ``checked_at`` scan finds them.

The pass always starts from the beginning (pipeline._extract), so this state
lives in memory only: a pass killed midway starts again with a fresh read.
Memory is the stored columns (about 30 bytes a record at 7-character keys) and
one covered position per row read. Record keys are not kept: the rare chunk
whose unchanged rows may release held records looks them up (pipeline._held).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Connection

from gateway.store import fingerprints


class PassDigests:
    """The stored digests of one source at the start of a fingerprint pass, and what the pass covered."""

    def __init__(self, keys: pa.Array, digests: pa.Array) -> None:
        order = pc.sort_indices(keys)
        self.keys: pa.Array = keys.take(order)
        del keys  # one column's extra copy at a time
        self.digests: pa.Array = digests.take(order)
        del digests, order
        n = len(self.keys)
        if n > 1:  # a key stored for more than one live record is mapped, never taken as unchanged
            eq = pc.fill_null(pc.equal(self.keys.slice(1), self.keys.slice(0, n - 1)), False)
            no = pa.array([False])
            self.ambiguous = pc.or_(pa.concat_arrays([no, eq]), pa.concat_arrays([eq, no]))
        else:
            self.ambiguous = pa.array([False] * n, pa.bool_())
        self._covered: list[pa.Array] = []
        # Positions of stored keys whose records the pass rewrote, as of the last chunk (a key not stored is
        # never taken as unchanged anyway).
        self._dirty: list[pa.Array] = []
        self._dirty_set: pa.Array | None = None
        self._pending: list[pa.Array] = []

    @classmethod
    def read(cls, conn: Connection, source: str, record_type: str) -> PassDigests:
        return cls(*fingerprints.live_digests(conn, source, record_type))

    def compare(self, keys: Sequence[str], digests: Sequence[bytes]) -> tuple[list[int], list[int]]:
        """(indices of the rows to map, indices of the unchanged ones), as batchstep.changed_rows decides
        them from a fresh lookup. Covers the stored entries of every key."""
        n = len(self.keys)
        if n == 0 or not keys:
            return list(range(len(keys))), []
        k = pa.array(keys, pa.string())
        at = pc.min_element_wise(pc.search_sorted(self.keys, k), pa.scalar(n - 1, pa.uint64()))
        found = pc.fill_null(pc.equal(self.keys.take(at), k), False)
        self._cover(k, at, found)
        same = pc.and_(found, pc.invert(self.ambiguous.take(at)))
        same = pc.and_(same, pc.fill_null(pc.equal(self.digests.take(at), pa.array(digests, self.digests.type)), False))
        if self._dirty_set is not None:
            same = pc.and_(same, pc.invert(pc.is_in(at, value_set=self._dirty_set)))
        other = pc.invert(same)
        self._pending.append(at.filter(pc.and_(found, other)))  # mapped now: their stored records change at commit
        return pc.indices_nonzero(other).to_pylist(), pc.indices_nonzero(same).to_pylist()

    def _cover(self, k: pa.Array, at: pa.Array, found: pa.Array) -> None:
        self._covered.append(at.filter(found))
        amb = pc.and_(found, self.ambiguous.take(at))
        if pc.any(amb).as_py():  # every entry of a key stored more than once (rare: search each of them)
            ks = k.filter(amb)
            lo = pc.search_sorted(self.keys, ks).to_pylist()
            hi = pc.search_sorted(self.keys, ks, side="right").to_pylist()
            self._covered.append(pa.array([p for a, b in zip(lo, hi, strict=True) for p in range(a, b)], pa.uint64()))

    def committed(self, rekeyed: Sequence[str]) -> None:
        """The chunk committed. The stored records of its mapped rows, and of `rekeyed` (source keys whose
        record another row took over), were rewritten: later rows of those keys are mapped again, not
        compared with a digest no longer the record's (the row path's fresh lookup would not find it)."""
        added, self._pending = self._pending, []
        if rekeyed and len(self.keys):
            k = pa.array(list(rekeyed), pa.string())
            at = pc.min_element_wise(pc.search_sorted(self.keys, k), pa.scalar(len(self.keys) - 1, pa.uint64()))
            added.append(at.filter(pc.fill_null(pc.equal(self.keys.take(at), k), False)))
        added = [a for a in added if len(a)]
        if added:
            self._dirty += added
            self._dirty_set = pa.concat_arrays(self._dirty)

    def gone(self) -> list[str]:
        """The stored source keys no row of the pass had (each once): the gaps between the covered
        positions, sorted (no hash table of a million positions)."""
        n = len(self.keys)
        if n == 0:
            return []
        covered = pa.concat_arrays(self._covered) if self._covered else pa.array([], pa.uint64())
        self._covered = []
        if not len(covered):
            return pc.unique(self.keys).to_pylist()  # type: ignore[no-any-return]
        covered = covered.take(pc.sort_indices(covered))
        first, last = covered[0].as_py(), covered[-1].as_py()
        missing = [*range(first), *range(last + 1, n)]
        if len(covered) > 1:
            at = pc.indices_nonzero(pc.greater(pc.subtract(covered.slice(1), covered.slice(0, len(covered) - 1)), 1))
            if len(at):
                lo = covered.take(at).to_pylist()
                hi = covered.take(pc.add(at, 1)).to_pylist()
                for a, b in zip(lo, hi, strict=True):
                    missing += range(a + 1, b)
        if not missing:
            return []
        return pc.unique(self.keys.take(pa.array(missing, pa.uint64()))).to_pylist()  # type: ignore[no-any-return]
