"""Algorithm suites: the one seam between the protocol and a signature algorithm.

A suite names a signature algorithm, the digest that goes with it and how its
keys are made, written and read. Requests, receipts and signed log heads sign
and verify through a suite; the suite's name travels in every request
signature's `alg` parameter, so a verifier never guesses.

Today there is one suite, `ed25519` (RFC 8032 with SHA-256 digests). A later
`sm2-sm3` suite (GB/T 32918 signatures over SM3) plugs in here: see
bench/bench_sm.py for the measured libraries and docs/protocol.md.
"""

from __future__ import annotations

import base64
import hashlib
from abc import ABC, abstractmethod
from difflib import get_close_matches
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PrivateKey = Any  # each suite's own key types; the suite that made a key knows it (`suite_of`)
PublicKey = Any


class Suite(ABC):
    """Signature algorithm, digest and key format of one deployment."""

    name: str
    digest_name: str  # the RFC 9530 algorithm key of `digest`, e.g. "sha-256"

    @abstractmethod
    def generate(self) -> PrivateKey: ...

    @abstractmethod
    def public_key(self, private: PrivateKey) -> PublicKey: ...

    @abstractmethod
    def sign(self, private: PrivateKey, data: bytes) -> bytes: ...

    @abstractmethod
    def verify(self, public: PublicKey, signature: bytes, data: bytes) -> bool:
        """True when `signature` is this suite's signature over `data` by `public`; never raises for a bad one."""

    @abstractmethod
    def digest(self, data: bytes) -> bytes: ...

    @abstractmethod
    def owns(self, key: object) -> bool:
        """Whether `key` (private or public) is one of this suite's keys."""

    @abstractmethod
    def public_text(self, public: PublicKey) -> str:
        """The public key as one line of text (what a hub registers)."""

    @abstractmethod
    def public_from_text(self, text: str) -> PublicKey: ...

    @abstractmethod
    def private_pem(self, private: PrivateKey) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""

    @abstractmethod
    def private_from_pem(self, pem: bytes) -> PrivateKey | None:
        """The key in `pem`, or None when it is not this suite's key."""


class Ed25519Suite(Suite):
    """RFC 8032 Ed25519 (pure) signatures, SHA-256 digests; public keys as base64 of the 32 raw bytes."""

    name = "ed25519"
    digest_name = "sha-256"

    def generate(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.generate()

    def public_key(self, private: Ed25519PrivateKey) -> Ed25519PublicKey:
        return private.public_key()

    def sign(self, private: Ed25519PrivateKey, data: bytes) -> bytes:
        return private.sign(data)

    def verify(self, public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    def digest(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def owns(self, key: object) -> bool:
        return isinstance(key, Ed25519PrivateKey | Ed25519PublicKey)

    def public_text(self, public: Ed25519PublicKey) -> str:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def public_from_text(self, text: str) -> Ed25519PublicKey:
        raw = base64.b64decode(text.strip().removeprefix("ed25519:"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)

    def private_pem(self, private: Ed25519PrivateKey) -> bytes:
        return private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def private_from_pem(self, pem: bytes) -> Ed25519PrivateKey | None:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            return None
        return key if isinstance(key, Ed25519PrivateKey) else None


ED25519 = Ed25519Suite()
SUITES: dict[str, Suite] = {ED25519.name: ED25519}
DEFAULT_SUITE = ED25519.name


class UnknownSuite(ValueError):
    """A suite name no suite answers to, or a key no suite owns."""


def suite(name: str) -> Suite:
    """The suite called `name`; UnknownSuite (with a did-you-mean) otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        near = get_close_matches(name, SUITES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownSuite(f"unknown suite {name!r}{hint}; known: {', '.join(SUITES)}") from None


def suite_of(key: object) -> Suite:
    """The suite a private or public key belongs to."""
    for s in SUITES.values():
        if s.owns(key):
            return s
    raise UnknownSuite(f"no suite for a key of type {type(key).__name__}")
