"""Algorithm suites: the one seam between the protocol and a signature algorithm.

A suite names a signature algorithm, the digest that goes with it and how its
keys are made, written and read. Requests, receipts and signed log heads sign
and verify through a suite; the suite's name travels in every request
signature's `alg` parameter, so a verifier never guesses.

Two suites: `ed25519` (RFC 8032 with SHA-256 digests, the default) and
`sm2-sm3` (GB/T 32918 SM2 signatures over SM3 with a signer ID, by default the
standard's 1234567812345678, via tongsuopy; bench/bench_sm.py has the library comparison).
A key's suite is read from the key itself; public keys of the SM2 suite are
written `sm2:<base64 of the uncompressed point>`, followed by `;id=<signer ID>`
when the ID is not the default, so a registered key names its suite and its ID.
"""

from __future__ import annotations

import base64
import hashlib
import re
from abc import ABC, abstractmethod
from difflib import get_close_matches
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
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
        except (ValueError, TypeError, UnsupportedAlgorithm):
            return None
        return key if isinstance(key, Ed25519PrivateKey) else None


# GB/T 32918.5 recommended curve parameters, for Z (GB/T 32918.2 §5.5).
SM2_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
SM2_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
DEFAULT_SIGNER_ID = "1234567812345678"
# Printable ASCII without white space or ';' (the key line's separator); ENTL is 16 bits, so at most 8191 bytes.
SIGNER_ID_RE = re.compile(r"^[!-:<-~]{1,1024}$")


class Sm2Sm3Suite(Suite):
    """SM2 signatures (DER r,s) over SM3(Z || M), SM3 digests; tongsuopy (Tongsuo), imported when first used.

    Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) with the key's signer ID (`signer_id`; default
    1234567812345678, GB/T 35276). tongsuopy's sign/verify compute Z with the default ID only and offer no
    way to set another, so for another ID Z and e = SM3(Z || M) are computed here and e is signed as a
    digest with Tongsuo's EVP_PKEY_sign/EVP_PKEY_verify (through tongsuopy's binding: its public API has no
    prehashed SM2). tests/test_sm_interop.py checks both paths against OpenSSL's `distid`.
    """

    name = "sm2-sm3"
    digest_name = "sm3"
    SIGNER_ID = DEFAULT_SIGNER_ID
    TEXT_PREFIX = "sm2:"
    ID_SEPARATOR = ";id="

    @staticmethod
    def _lib() -> Any:
        try:
            from tongsuopy.crypto import hashes, serialization
            from tongsuopy.crypto.asymciphers import ec
            from tongsuopy.crypto.exceptions import InvalidSignature as SmInvalidSignature
        except ImportError:
            raise UnknownSuite(
                "suite sm2-sm3 needs the tongsuopy package (pip install 'emergency-gateway[sm]')"
            ) from None
        return hashes, serialization, ec, SmInvalidSignature

    @staticmethod
    def signer_id(key: object) -> str:
        """The signer ID a key signs or verifies with (kept on the key object by `with_signer_id`)."""
        return getattr(key, "sm2_signer_id", DEFAULT_SIGNER_ID)

    @staticmethod
    def with_signer_id(key: Any, signer_id: str | None) -> Any:
        """`key` set to sign or verify with `signer_id` (None: the default); ValueError for an ID we cannot write."""
        signer_id = signer_id or DEFAULT_SIGNER_ID
        if not SIGNER_ID_RE.match(signer_id):
            raise ValueError(
                f"SM2 signer ID {signer_id!r}: use 1-1024 printable ASCII characters without ';' or spaces"
            )
        key.sm2_signer_id = signer_id
        return key

    def generate(self) -> PrivateKey:
        _, _, ec, _ = self._lib()
        return ec.generate_private_key(ec.SM2())

    def public_key(self, private: PrivateKey) -> PublicKey:
        return self.with_signer_id(private.public_key(), self.signer_id(private))

    def z(self, public: PublicKey, signer_id: str) -> bytes:
        """GB/T 32918.2 §5.5: Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A)."""
        uid = signer_id.encode("ascii")
        n = public.public_numbers()
        coords = (SM2_A, SM2_B, SM2_GX, SM2_GY, n.x, n.y)
        return self.digest((len(uid) * 8).to_bytes(2, "big") + uid + b"".join(v.to_bytes(32, "big") for v in coords))

    @staticmethod
    def _pkey_ctx(key: Any, init: str) -> Any:
        from tongsuopy.backends.tongsuo.backend import backend

        lib, ffi = backend._lib, backend._ffi
        ctx = ffi.gc(lib.EVP_PKEY_CTX_new(key._evp_pkey, ffi.NULL), lib.EVP_PKEY_CTX_free)
        if getattr(lib, init)(ctx) != 1:
            backend._consume_errors()
            raise ValueError(f"{init} failed for this SM2 key")
        return backend, ctx

    def sign_digest(self, private: PrivateKey, e: bytes) -> bytes:
        """The SM2 signature of the digest `e` (= SM3(Z || M)), DER (r, s)."""
        backend, ctx = self._pkey_ctx(private, "EVP_PKEY_sign_init")
        lib, ffi = backend._lib, backend._ffi
        size = ffi.new("size_t *")
        if lib.EVP_PKEY_sign(ctx, ffi.NULL, size, e, len(e)) != 1:
            backend._consume_errors()
            raise ValueError("EVP_PKEY_sign failed")
        buf = ffi.new("unsigned char[]", size[0])
        if lib.EVP_PKEY_sign(ctx, buf, size, e, len(e)) != 1:
            backend._consume_errors()
            raise ValueError("EVP_PKEY_sign failed")
        return bytes(ffi.buffer(buf)[: size[0]])

    def verify_digest(self, public: PublicKey, signature: bytes, e: bytes) -> bool:
        backend, ctx = self._pkey_ctx(public, "EVP_PKEY_verify_init")
        ok = backend._lib.EVP_PKEY_verify(ctx, signature, len(signature), e, len(e)) == 1
        backend._consume_errors()  # a bad signature leaves an error on the queue
        return ok

    def sign(self, private: PrivateKey, data: bytes) -> bytes:
        signer_id = self.signer_id(private)
        if signer_id != DEFAULT_SIGNER_ID:
            return self.sign_digest(private, self.digest(self.z(private.public_key(), signer_id) + data))
        hashes, _, ec, _ = self._lib()
        return private.sign(data, ec.ECDSA(hashes.SM3()))

    def verify(self, public: PublicKey, signature: bytes, data: bytes) -> bool:
        hashes, _, ec, bad = self._lib()
        signer_id = self.signer_id(public)
        if signer_id != DEFAULT_SIGNER_ID:
            return self.verify_digest(public, signature, self.digest(self.z(public, signer_id) + data))
        try:
            public.verify(signature, data, ec.ECDSA(hashes.SM3()))
        except (bad, ValueError):
            return False
        return True

    def digest(self, data: bytes) -> bytes:
        hashes, _, _, _ = self._lib()
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()

    def owns(self, key: object) -> bool:
        try:
            _, _, ec, _ = self._lib()
        except UnknownSuite:
            return False
        return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name == "SM2"

    def public_text(self, public: PublicKey) -> str:
        _, serialization, _, _ = self._lib()
        point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        signer_id = self.signer_id(public)
        suffix = "" if signer_id == DEFAULT_SIGNER_ID else self.ID_SEPARATOR + signer_id
        return self.TEXT_PREFIX + base64.b64encode(point).decode("ascii") + suffix

    def public_from_text(self, text: str) -> PublicKey:
        _, _, ec, _ = self._lib()
        point, _, signer_id = text.strip().removeprefix(self.TEXT_PREFIX).partition(self.ID_SEPARATOR)
        raw = base64.b64decode(point, validate=True)
        return self.with_signer_id(ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), raw), signer_id or None)

    def private_pem(self, private: PrivateKey) -> bytes:
        _, serialization, _, _ = self._lib()
        return private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def private_from_pem(self, pem: bytes) -> PrivateKey | None:
        try:
            _, serialization, _, _ = self._lib()
        except UnknownSuite:
            return None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except Exception:  # tongsuopy raises its own UnsupportedAlgorithm/InternalError for other key types
            return None
        return key if self.owns(key) else None


ED25519 = Ed25519Suite()
SM2_SM3 = Sm2Sm3Suite()
SUITES: dict[str, Suite] = {ED25519.name: ED25519, SM2_SM3.name: SM2_SM3}
ALIASES = {"sm2": SM2_SM3.name}  # what `gateway keys new --suite` also takes
DEFAULT_SUITE = ED25519.name


class UnknownSuite(ValueError):
    """A suite name no suite answers to, or a key no suite owns."""


def suite(name: str) -> Suite:
    """The suite called `name`; UnknownSuite (with a did-you-mean) otherwise."""
    try:
        return SUITES[ALIASES.get(name, name)]
    except KeyError:
        near = get_close_matches(name, SUITES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UnknownSuite(f"unknown suite {name!r}{hint}; known: {', '.join(SUITES)}") from None


def suite_of_text(text: str) -> Suite:
    """The suite a public key line is written in: `sm2:` for SM2, otherwise Ed25519 (older keys have no prefix)."""
    return SM2_SM3 if text.strip().startswith(Sm2Sm3Suite.TEXT_PREFIX) else ED25519


def suite_of(key: object) -> Suite:
    """The suite a private or public key belongs to."""
    for s in SUITES.values():
        if s.owns(key):
            return s
    raise UnknownSuite(f"no suite for a key of type {type(key).__name__}")
