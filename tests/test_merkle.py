"""The Merkle tree of compact receipts (gateway/protocol/merkle.py): RFC 6962 roots, inclusion proofs, both suites."""

from __future__ import annotations

import hashlib

import pytest

from gateway.protocol.merkle import inclusion_proof, leaf_data, merkle_root, verify_inclusion
from gateway.protocol.suites import suite
from tests.fixtures.hub import SUITE_PARAMS

SHA256 = hashlib.sha256

# RFC 6962's reference test leaves and the roots of their first n (certificate-transparency's merkle tests).
CT_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def sha256(b: bytes) -> bytes:
    return SHA256(b).digest()


def test_roots_are_rfc_6962s() -> None:
    assert merkle_root(sha256, []).hex() == SHA256(b"").hexdigest()
    for n, root in enumerate(CT_ROOTS, start=1):
        assert merkle_root(sha256, CT_LEAVES[:n]).hex() == root, n


def records(n: int) -> list[bytes]:
    return [leaf_data("material", "yjj", f"WZ-{i:04d}", i + 1, f"{i:064x}") for i in range(n)]


@pytest.mark.parametrize("suite_name", SUITE_PARAMS)
def test_every_leaf_has_a_proof_and_a_changed_leaf_fails(suite_name: str) -> None:
    digest = suite(suite_name).digest
    for n in (1, 2, 3, 7, 8, 9, 33):
        items = records(n)
        root = merkle_root(digest, items)
        for i in range(n):
            proof = inclusion_proof(digest, items, i)
            assert verify_inclusion(digest, items[i], i, n, proof, root)
            # Another record (a changed seq), another position, another count: each fails. (A count changes
            # a proof only where it changes the path; a compact receipt signs its count besides.)
            assert not verify_inclusion(digest, leaf_data("material", "yjj", f"WZ-{i:04d}", i + 2, f"{i:064x}"),
                                        i, n, proof, root)
            if n > 1:
                assert not verify_inclusion(digest, items[i], (i + 1) % n, n, proof, root)
            if i == n - 1:  # a larger count gives the last leaf a right sibling its proof lacks
                assert not verify_inclusion(digest, items[i], i, n + 1, proof, root)
        with pytest.raises(IndexError):
            inclusion_proof(digest, items, n)


def test_the_root_depends_on_every_leaf_its_order_and_the_count() -> None:
    items = records(6)
    root = merkle_root(sha256, items)
    assert merkle_root(sha256, [items[1], items[0], *items[2:]]) != root  # reordered
    assert merkle_root(sha256, items[:-1]) != root  # one left out
    assert merkle_root(sha256, [*items, items[-1]]) != root  # one repeated
    assert merkle_root(sha256, [*items[:3], leaf_data("material", "yjj", "WZ-0003", 4, "f" * 64), *items[4:]]) != root


def test_leaves_and_inner_nodes_are_told_apart() -> None:
    """RFC 6962's domain separation: two leaves' concatenation is not a leaf whose hash equals their parent."""
    a, b = records(2)
    parent = merkle_root(sha256, [a, b])
    forged = sha256(b"\x00" + a) + sha256(b"\x00" + b)
    assert merkle_root(sha256, [forged]) != parent


def test_the_suites_hash_differently() -> None:
    items = records(5)
    assert merkle_root(suite("ed25519").digest, items) != merkle_root(suite("sm2-sm3").digest, items)
