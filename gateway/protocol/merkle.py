"""A Merkle tree over a batch's accepted records: what a compact receipt signs instead of listing them.

RFC 6962 §2.1 shape and domain separation: a leaf is H(0x00 || leaf data), an inner node
H(0x01 || left || right), a tree of n leaves splits at the largest power of two below n, and the
empty tree's root is H(""). H is the hub key's suite digest (SHA-256 under ed25519, SM3 under
sm2-sm3; `gateway.protocol.suites`). A leaf's data is the canonical JSON of the record's
[type, department, key, seq, version], so both ends build the same bytes from what they hold.

An inclusion proof (RFC 6962 §2.1.1 audit path) lets a department show one record's acceptance
later from the stored batch: its leaf, its index, the batch's count and the signed root.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.protocol.canonical import canonical_json

Digest = Callable[[bytes], bytes]
LEAF = b"\x00"
NODE = b"\x01"


def leaf_data(type_: str, department: str, key: str, seq: int, version: str) -> bytes:
    """The bytes a leaf hashes: one record's identity and content version."""
    return canonical_json([type_, department, key, seq, version])


def leaf_hash(digest: Digest, data: bytes) -> bytes:
    return digest(LEAF + data)


def _node(digest: Digest, left: bytes, right: bytes) -> bytes:
    return digest(NODE + left + right)


def _split(n: int) -> int:
    """The largest power of two below n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of_leaves(digest: Digest, leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes, bottom-up: pairs in order, an odd last node carried up as it is.

    The same tree as RFC 6962's recursive split (the left subtree is always the full power of two)."""
    if not leaves:
        return digest(b"")
    level = list(leaves)
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        nxt = [digest(NODE + a + b) for a, b in zip(level[::2], level[1::2], strict=False)]
        if odd is not None:
            nxt.append(odd)
        level = nxt
    return level[0]


def merkle_root(digest: Digest, items: Sequence[bytes]) -> bytes:
    """The root over the leaf data `items`, in order."""
    return root_of_leaves(digest, [digest(LEAF + d) for d in items])


def inclusion_proof(digest: Digest, items: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` among `items` (leaf data), lowest sibling first."""
    if not 0 <= index < len(items):
        raise IndexError(f"leaf {index} not in a tree of {len(items)}")
    return _path(digest, [leaf_hash(digest, d) for d in items], index)


def _path(digest: Digest, leaves: list[bytes], index: int) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return [*_path(digest, leaves[:k], index), root_of_leaves(digest, leaves[k:])]
    return [*_path(digest, leaves[k:], index - k), root_of_leaves(digest, leaves[:k])]


def verify_inclusion(digest: Digest, data: bytes, index: int, count: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Whether leaf data `data` is leaf `index` of a `count`-leaf tree with `root` (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < count:
        return False
    fn, sn = index, count - 1
    r = leaf_hash(digest, data)
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = _node(digest, p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(digest, r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
