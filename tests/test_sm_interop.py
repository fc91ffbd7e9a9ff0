"""The SM libraries against OpenSSL and the standards' vectors (issue 17's library choice).

Establishes that tongsuopy's SM2 signature is the standard's: SM3 over Z || M,
with Z computed from the signer ID 1234567812345678 (GB/T 32918.2 §5.5, GM/T
0009). OpenSSL verifies it only when told that ID (`-pkeyopt distid:…`), and
refuses it with no ID or another one; OpenSSL's signature made with that ID
verifies with tongsuopy. SM3 and SM4 outputs are checked against the
standards' examples and OpenSSL.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

tongsuopy = pytest.importorskip("tongsuopy")
from tongsuopy.crypto import hashes, serialization  # noqa: E402
from tongsuopy.crypto.asymciphers import ec  # noqa: E402
from tongsuopy.crypto.ciphers import Cipher, algorithms, modes  # noqa: E402
from tongsuopy.crypto.exceptions import InvalidSignature  # noqa: E402

SIGNER_ID = "1234567812345678"
# GB/T 32905-2016 Appendix A: example 1 ("abc") and example 2 ("abcd" x 16).
SM3_VECTORS = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
]
# GB/T 32907-2016 Appendix A.1: key = plaintext, one block.
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_CIPHERTEXT = bytes.fromhex("681edf34d206965e86b3e94f536e4246")
MESSAGE = bytes(range(200))


def openssl_has_sm() -> str | None:
    """None when the openssl command can do SM2 and SM3, else why not."""
    if shutil.which("openssl") is None:
        return "openssl command not installed"
    algs = subprocess.run(["openssl", "list", "-public-key-algorithms"], capture_output=True, text=True).stdout
    digests = subprocess.run(["openssl", "list", "-digest-algorithms"], capture_output=True, text=True).stdout
    if "SM2" not in algs.upper() or "SM3" not in digests.upper():
        version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
        return f"{version} lacks SM2/SM3"
    return None


needs_openssl_sm = pytest.mark.skipif(openssl_has_sm() is not None, reason=str(openssl_has_sm()))


def openssl(*args: str, cwd: Path, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], cwd=cwd, input=data, capture_output=True)


def sm3(data: bytes) -> str:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


@pytest.fixture
def sm2_files(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SM2())
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (tmp_path / "pub.pem").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "msg").write_bytes(MESSAGE)
    return key, tmp_path


def openssl_verify(d: Path, *opts: str) -> bool:
    r = openssl(
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-digest",
        "sm3",
        *opts,
        "-in",
        "msg",
        "-sigfile",
        "sig",
        cwd=d,
    )
    return r.returncode == 0 and b"Signature Verified Successfully" in r.stdout


@needs_openssl_sm
def test_tongsuopy_sm2_signature_uses_z_with_the_standard_signer_id(sm2_files) -> None:
    key, d = sm2_files
    (d / "sig").write_bytes(key.sign(MESSAGE, ec.ECDSA(hashes.SM3())))
    assert openssl_verify(d, "-pkeyopt", f"distid:{SIGNER_ID}")
    # Not a plain ECDSA-with-SM3 over the message, and not Z with an empty or other ID:
    assert not openssl_verify(d)
    assert not openssl_verify(d, "-pkeyopt", "distid:8765432187654321")


@needs_openssl_sm
def test_openssl_sm2_signature_with_the_signer_id_verifies_with_tongsuopy(sm2_files) -> None:
    key, d = sm2_files
    r = openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        "key.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        f"distid:{SIGNER_ID}",
        "-in",
        "msg",
        "-out",
        "sig",
        cwd=d,
    )
    assert r.returncode == 0, r.stderr
    sig = (d / "sig").read_bytes()
    key.public_key().verify(sig, MESSAGE, ec.ECDSA(hashes.SM3()))
    with pytest.raises(InvalidSignature):
        key.public_key().verify(sig, MESSAGE[:-1] + b"\0", ec.ECDSA(hashes.SM3()))


@pytest.mark.parametrize("data, digest", SM3_VECTORS)
def test_sm3_matches_the_standards_examples(data: bytes, digest: str) -> None:
    from cryptography.hazmat.primitives import hashes as chashes

    h = chashes.Hash(chashes.SM3())
    h.update(data)
    assert sm3(data) == digest == h.finalize().hex()


@needs_openssl_sm
@pytest.mark.parametrize("data, digest", SM3_VECTORS)
def test_sm3_matches_openssl(tmp_path: Path, data: bytes, digest: str) -> None:
    out = openssl("dgst", "-sm3", "-r", cwd=tmp_path, data=data).stdout.decode().split()[0]
    assert out == digest == sm3(data)


def test_sm4_matches_the_standards_example(tmp_path: Path) -> None:
    e = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
    assert e.update(SM4_KEY) + e.finalize() == SM4_CIPHERTEXT
    r = openssl("enc", "-sm4-ecb", "-K", SM4_KEY.hex(), "-nopad", cwd=tmp_path, data=SM4_KEY)
    if r.returncode == 0:  # OpenSSL builds without SM4 exist; the vector above holds either way
        assert r.stdout == SM4_CIPHERTEXT


def test_bench_sm_runs_and_its_libraries_agree(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_sm", Path(__file__).parents[1] / "bench" / "bench_sm.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    pytest.importorskip("gmssl")
    res = bench.main(["--seconds", "0.02"])
    assert all(
        res[lib]["sm3_vector_ok"] and res[lib]["sm4_vector_ok"] for lib in ("tongsuopy", "gmssl", "cryptography")
    )
    assert res["interop"] == {"tongsuopy_sig_verified_by_gmssl": True, "gmssl_sig_verified_by_tongsuopy": True}
    assert "SM2 sign µs" in capsys.readouterr().out


OTHER_ID = "ALICE123@YAHOO.COM"  # the signer ID of GB/T 32918.2's worked example


@needs_openssl_sm
def test_a_configured_signer_id_is_the_one_in_z_both_directions(sm2_files) -> None:
    """tongsuopy fixes the ID; the suite computes Z itself for another one. OpenSSL agrees both ways."""
    from gateway.protocol.suites import SM2_SM3

    key, d = sm2_files
    SM2_SM3.with_signer_id(key, OTHER_ID)
    (d / "sig").write_bytes(SM2_SM3.sign(key, MESSAGE))
    assert openssl_verify(d, "-pkeyopt", f"distid:{OTHER_ID}")
    assert not openssl_verify(d, "-pkeyopt", f"distid:{SIGNER_ID}")

    r = openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        "key.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        f"distid:{OTHER_ID}",
        "-in",
        "msg",
        "-out",
        "sig",
        cwd=d,
    )
    assert r.returncode == 0, r.stderr
    sig = (d / "sig").read_bytes()
    public = SM2_SM3.public_key(key)
    assert SM2_SM3.signer_id(public) == OTHER_ID
    assert SM2_SM3.verify(public, sig, MESSAGE) and not SM2_SM3.verify(public, sig, MESSAGE + b"x")
    assert not SM2_SM3.verify(SM2_SM3.with_signer_id(key.public_key(), None), sig, MESSAGE)


def test_the_z_path_with_the_default_id_equals_tongsuopys_own() -> None:
    """The prehashed path (Z computed here, e signed as a digest) and tongsuopy's sign agree for the default ID."""
    from gateway.protocol.suites import SM2_SM3

    key = ec.generate_private_key(ec.SM2())
    public = key.public_key()
    e = SM2_SM3.digest(SM2_SM3.z(public, SIGNER_ID) + MESSAGE)
    public.verify(SM2_SM3.sign_digest(key, e), MESSAGE, ec.ECDSA(hashes.SM3()))
    assert SM2_SM3.verify_digest(public, key.sign(MESSAGE, ec.ECDSA(hashes.SM3())), e)
    assert not SM2_SM3.verify_digest(public, key.sign(MESSAGE, ec.ECDSA(hashes.SM3())), bytes(32))


def test_the_signer_id_travels_in_the_public_key_line(tmp_path: Path) -> None:
    from gateway.protocol.keys import new_key_pair, public_key_text, read_private_key, read_public_key
    from gateway.protocol.suites import SM2_SM3

    key = new_key_pair(tmp_path / "k.key", tmp_path / "k.pub", "sm2-sm3", OTHER_ID)
    line = (tmp_path / "k.pub").read_text().strip()
    assert line.startswith("sm2:") and line.endswith(f";id={OTHER_ID}")
    public = read_public_key(tmp_path / "k.pub")
    assert SM2_SM3.signer_id(public) == OTHER_ID and public_key_text(public) == line
    signer = read_private_key(tmp_path / "k.key", OTHER_ID)
    assert SM2_SM3.verify(public, SM2_SM3.sign(signer, MESSAGE), MESSAGE)
    assert not SM2_SM3.verify(public, SM2_SM3.sign(read_private_key(tmp_path / "k.key"), MESSAGE), MESSAGE)
    with pytest.raises(ValueError, match="signer ID"):
        SM2_SM3.with_signer_id(key, "two words")
