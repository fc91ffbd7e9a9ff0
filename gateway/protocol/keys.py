"""Key files: private key PEM (PKCS#8, mode 0600), public key as one line of text; each suite's own format.

Which suite a key belongs to is read from the key itself (gateway/protocol/suites.py).
For `ed25519` the public line is the base64 of the 32 raw bytes; for `sm2-sm3` it is
`sm2:` and the base64 of the 65-byte uncompressed point, then `;id=<signer ID>` when the key
signs with a signer ID other than the default (a private key file does not hold its ID: the config says it).

With `[at_rest] cipher = "sm4"` the private key file is the PEM sealed in an SM4-GCM envelope
(gateway/at_rest/): callers pass the KeyRing's `seal`/`open` as `seal`/`opener`, so this module stays
below the config.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.at_rest.envelope import is_sealed
from gateway.at_rest.files import write_file
from gateway.protocol.suites import (
    DEFAULT_SUITE,
    SM2_SM3,
    SUITES,
    PrivateKey,
    PublicKey,
    suite,
    suite_of,
    suite_of_text,
)


def new_private_key(suite_name: str = DEFAULT_SUITE) -> PrivateKey:
    return suite(suite_name).generate()


def public_key_of(key: PrivateKey) -> PublicKey:
    """The public half of `key`, keeping what its suite attaches (an SM2 key's signer ID)."""
    return suite_of(key).public_key(key)


def public_key_text(key: PublicKey) -> str:
    return suite_of(key).public_text(key)


def public_key_from_text(text: str, suite_name: str | None = None) -> PublicKey:
    """The key on a public key line; its suite from the line itself unless `suite_name` says."""
    return (suite(suite_name) if suite_name else suite_of_text(text)).public_from_text(text)


Sealer = Callable[[bytes], bytes]
Opener = Callable[[bytes, str], bytes]  # (stored bytes, what they are for the error) -> plaintext


def write_private_key(key: PrivateKey, path: str | Path, seal: Sealer | None = None) -> None:
    pem = suite_of(key).private_pem(key)
    write_file(Path(path), seal(pem) if seal else pem, 0o600)  # 0600 from the start, renamed into place whole


def read_private_key(path: str | Path, sm2_signer_id: str | None = None, opener: Opener | None = None) -> PrivateKey:
    """The key in `path`; an SM2 key signs with `sm2_signer_id` (None: the standard's default)."""
    pem = Path(path).read_bytes()
    if is_sealed(pem):
        if opener is None:
            raise ValueError(f"{path}: sealed with SM4 at rest; the config's [at_rest] keys are needed to read it")
        pem = opener(pem, f"私钥 / private key {path}")
    for s in SUITES.values():
        key = s.private_from_pem(pem)
        if key is not None:
            return SM2_SM3.with_signer_id(key, sm2_signer_id) if s is SM2_SM3 else key
    raise ValueError(f"{path}: not a private key of any suite ({', '.join(SUITES)})")


def write_public_key(key: PublicKey, path: str | Path) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(public_key_text(key) + "\n", encoding="ascii")


def read_public_key(path: str | Path, suite_name: str | None = None) -> PublicKey:
    return public_key_from_text(Path(path).read_text(encoding="ascii"), suite_name)


def new_key_pair(
    private_path: str | Path, public_path: str | Path, suite_name: str = DEFAULT_SUITE, sm2_signer_id: str | None = None,
    seal: Sealer | None = None,
) -> PrivateKey:
    """A new key of `suite_name`; its .pub line names the suite (and an SM2 key's signer ID unless the default)."""
    key = new_private_key(suite_name)
    if suite(suite_name) is SM2_SM3:
        SM2_SM3.with_signer_id(key, sm2_signer_id)
    write_private_key(key, private_path, seal)
    write_public_key(suite_of(key).public_key(key), public_path)
    return key
