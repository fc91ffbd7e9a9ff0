"""Raw-row digests of an Arrow record batch: one digest column per batch (rowhash.py's batch form).

Each row's canonical bytes are assembled for the whole batch in Arrow's kernels
(one element-wise join of binary views of the columns), then each row's bytes are
hashed with keyed BLAKE2b, as rowhash.row_hash does. A row's bytes are, in schema
order, per column:

- a fixed-width value (integers, floats, dates, times, timestamps, durations,
  decimals; booleans as one byte): its little-endian bytes as Arrow stores them,
  zeros for a null;
- text or binary: its 8-byte length (0 for a null), then its bytes;

followed by the null mask (one bit per column, 64 to a word). The schema (each
column's name and type, unit and time zone included) keys the digest, so the
encoding can be read back, and two rows digest alike only when every column holds
the same bytes under the same type. That is finer than equality of the Python
values (``-0.0`` and ``0.0``, two NaNs differ here): a false difference costs one
re-mapping, never a missed change. Types without such an encoding here (lists,
structs, maps, unions) give None: the caller hashes that batch row by row.

The bytes depend on the Arrow types the adapter chose, not on pyarrow's
formatting; pyarrow's version is still folded into rowhash.inputs_digest, so an
upgrade that types a column differently re-maps once instead of comparing
digests of two encodings.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc

FORMAT = b"gateway-arrow-row-hash-1"
_TEXT = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
_FIXED = (pa.types.is_integer, pa.types.is_floating, pa.types.is_temporal, pa.types.is_decimal)


def _bytes_of(arr: pa.Array, width: int) -> pa.Array:
    """A fixed-width array without nulls as binary, each value its stored bytes (a zero-copy view, then a cast)."""
    view = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(arr), [None, arr.buffers()[1]], offset=arr.offset)
    return pc.cast(view, pa.binary())


def _parts(arr: pa.Array) -> list[pa.Array] | None:
    """The column's pieces of each row's bytes; None for a type without an encoding here."""
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return []  # the null mask says it all
    if pa.types.is_boolean(t):
        arr = pc.cast(arr, pa.uint8())
        t = arr.type
    if any(is_(t) for is_ in _TEXT):
        raw = pc.cast(arr, pa.binary())
        lengths = pc.cast(pc.binary_length(raw), pa.int64())
        if arr.null_count:
            raw, lengths = pc.fill_null(raw, b""), pc.fill_null(lengths, 0)
        return [_bytes_of(lengths, 8), raw]
    if any(is_(t) for is_ in _FIXED) and t.bit_width % 8 == 0:
        if arr.null_count:  # a null slot holds arbitrary bytes: zero it (the mask tells it from a zero)
            arr = pc.fill_null(arr, _zero(t))
        return [_bytes_of(arr, t.bit_width // 8)]
    return None


def _zero(t: pa.DataType) -> pa.Scalar:
    """A value of type `t` whose stored bytes are all zero."""
    return pa.Array.from_buffers(t, 1, [None, pa.py_buffer(bytes(t.bit_width // 8))])[0]


def _null_mask(columns: list[pa.Array], n: int) -> list[pa.Array]:
    """One uint64 word per 64 columns, bit j set where column j is null, as 8-byte binary values."""
    words: list[pa.Array] = []
    for w in range(0, max(len(columns), 1), 64):
        word: pa.Array = pa.nulls(n, pa.uint64()).fill_null(0)
        for j, col in enumerate(columns[w : w + 64]):
            if col.null_count:
                word = pc.bit_wise_or(word, pc.multiply(pc.cast(pc.is_null(col), pa.uint64()), pa.scalar(1 << j, pa.uint64())))
        words.append(_bytes_of(word, 8))
    return words


def batch_digests(data: pa.RecordBatch, inputs: bytes) -> list[bytes] | None:
    """One 16-byte digest per row of `data` under the mapping inputs `inputs`; None when a column's
    type has no canonical encoding here (hash those rows with rowhash.row_hash instead)."""
    n = data.num_rows
    if n == 0:
        return []
    key = hashlib.blake2b(FORMAT, digest_size=32, key=inputs)
    pieces: list[pa.Array] = []
    for f, col in zip(data.schema, data.columns, strict=True):
        got = _parts(col)
        if got is None:
            return None
        key.update(b"\x00" + f.name.encode() + b"\x00" + str(f.type).encode())
        pieces += got
    pieces += _null_mask(list(data.columns), n)
    rows = pc.binary_join_element_wise(*pieces, b"")
    base = hashlib.blake2b(digest_size=16, key=key.digest())
    out: list[bytes] = []
    add, fresh = out.append, base.copy
    for b in rows.to_pylist():
        h = fresh()  # a copy of the keyed state: the key block is not compressed again per row
        h.update(b)
        add(h.digest())
    return out
