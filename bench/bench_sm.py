"""SM2/SM3/SM4 libraries for a later `sm2-sm3` suite, measured side by side on one core.

    .venv/bin/python bench/bench_sm.py [--message-bytes 200] [--seconds 0.5] [--out bench/results/sm.json]

For each library: SM2 sign and verify (with SM3 and the standard's signer ID
1234567812345678), SM3 digest and SM4 encryption of one message, in µs per
operation (median of 5 rounds), beside Ed25519 and SHA-256 from `cryptography`
(today's suite). Correctness is checked first against the standards' vectors:
SM3("abc") (GB/T 32905 A.1) and the SM4 block of GB/T 32907 A.1, and each SM2
signature is checked by the other library (both use the Z value with that ID).

Libraries: tongsuopy (Tongsuo, compiled), gmssl (pure Python) and `cryptography`
(SM3 and SM4 only: it has no SM2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM4_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
SM4_BLOCK = bytes.fromhex("681edf34d206965e86b3e94f536e4246")  # SM4_KEY encrypting itself, one block


def per_op_us(fn: Callable[[], object], seconds: float) -> float:
    """Median over 5 rounds of the time per call, each round about `seconds / 5` long."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        fn()
        n += 1
    per_round = max(1, int(n / 0.05 * seconds / 5))
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(per_round):
            fn()
        rounds.append((time.perf_counter() - t0) / per_round * 1e6)
    return round(statistics.median(rounds), 2)


def bench_tongsuopy(msg: bytes, seconds: float) -> dict[str, Any]:
    import tongsuopy
    from tongsuopy.crypto import hashes
    from tongsuopy.crypto.asymciphers import ec
    from tongsuopy.crypto.ciphers import Cipher, algorithms, modes

    key = ec.generate_private_key(ec.SM2())
    pub = key.public_key()
    alg = ec.ECDSA(hashes.SM3())
    sig = key.sign(msg, alg)
    pub.verify(sig, msg, alg)

    def sm3(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()

    def sm4_ecb(block: bytes) -> bytes:
        e = Cipher(algorithms.SM4(SM4_KEY), modes.ECB()).encryptor()
        return e.update(block) + e.finalize()

    def sm4_cbc() -> bytes:
        e = Cipher(algorithms.SM4(SM4_KEY), modes.CBC(b"\0" * 16)).encryptor()
        return e.update(msg[: len(msg) // 16 * 16]) + e.finalize()

    return {
        "version": tongsuopy.__version__,
        "sm3_vector_ok": sm3(b"abc").hex() == SM3_ABC,
        "sm4_vector_ok": sm4_ecb(SM4_KEY) == SM4_BLOCK,
        "sm2_sign_us": per_op_us(lambda: key.sign(msg, alg), seconds),
        "sm2_verify_us": per_op_us(lambda: pub.verify(sig, msg, alg), seconds),
        "sm3_us": per_op_us(lambda: sm3(msg), seconds),
        "sm4_cbc_us": per_op_us(sm4_cbc, seconds),
        "_pair": (key, sig),
    }


def bench_gmssl(msg: bytes, seconds: float) -> dict[str, Any]:
    from importlib.metadata import version

    from gmssl import func, sm2, sm3, sm4

    # The GB/T 32918 example key is not needed: any key on the curve; derive the public point with gmssl itself.
    priv = func.random_hex(64)
    c = sm2.CryptSM2(private_key=priv, public_key="")
    pub = c._kg(int(priv, 16), c.ecc_table["g"])
    signer = sm2.CryptSM2(private_key=priv, public_key=pub)
    sig = signer.sign_with_sm3(msg)
    assert signer.verify_with_sm3(sig, msg)
    s4 = sm4.CryptSM4()
    s4.set_key(SM4_KEY, sm4.SM4_ENCRYPT)
    return {
        "version": version("gmssl"),
        "sm3_vector_ok": sm3.sm3_hash(func.bytes_to_list(b"abc")) == SM3_ABC,
        "sm4_vector_ok": s4.crypt_ecb(SM4_KEY)[:16] == SM4_BLOCK,
        "sm2_sign_us": per_op_us(lambda: signer.sign_with_sm3(msg), seconds),
        "sm2_verify_us": per_op_us(lambda: signer.verify_with_sm3(sig, msg), seconds),
        "sm3_us": per_op_us(lambda: sm3.sm3_hash(func.bytes_to_list(msg)), seconds),
        "sm4_cbc_us": per_op_us(lambda: s4.crypt_cbc(b"\0" * 16, msg), seconds),
        "_signer": signer,
    }


def bench_cryptography(msg: bytes, seconds: float) -> dict[str, Any]:
    import cryptography
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    def sm3(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize()

    def sha256(data: bytes) -> bytes:
        h = hashes.Hash(hashes.SHA256())
        h.update(data)
        return h.finalize()

    def sm4(mode: Any, data: bytes) -> bytes:
        e = Cipher(algorithms.SM4(SM4_KEY), mode).encryptor()
        return e.update(data) + e.finalize()

    ed = Ed25519PrivateKey.generate()
    edpub = ed.public_key()
    edsig = ed.sign(msg)
    return {
        "version": cryptography.__version__,
        "sm3_vector_ok": sm3(b"abc").hex() == SM3_ABC,
        "sm4_vector_ok": sm4(modes.ECB(), SM4_KEY) == SM4_BLOCK,
        "sm2_sign_us": None,  # cryptography has no SM2
        "sm2_verify_us": None,
        "sm3_us": per_op_us(lambda: sm3(msg), seconds),
        "sm4_cbc_us": per_op_us(lambda: sm4(modes.CBC(b"\0" * 16), msg[: len(msg) // 16 * 16]), seconds),
        "sm4_gcm_us": per_op_us(lambda: sm4(modes.GCM(b"\0" * 12), msg), seconds),
        "baseline": {
            "ed25519_sign_us": per_op_us(lambda: ed.sign(msg), seconds),
            "ed25519_verify_us": per_op_us(lambda: edpub.verify(edsig, msg), seconds),
            "sha256_us": per_op_us(lambda: sha256(msg), seconds),
        },
    }


def cross_check(msg: bytes, tongsuo: dict[str, Any], gm: dict[str, Any]) -> dict[str, bool]:
    """Each library's SM2 signature verified by the other: they agree on Z (signer ID 1234567812345678)."""
    from gmssl import sm2
    from tongsuopy.crypto import hashes, serialization
    from tongsuopy.crypto.asymciphers import ec
    from tongsuopy.crypto.exceptions import InvalidSignature

    key, sig = tongsuo["_pair"]
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    n = key.private_numbers().private_value
    gm_peer = sm2.CryptSM2(private_key=f"{n:064x}", public_key=point[1:].hex())
    r, s = der_to_rs(sig)
    tongsuo_by_gmssl = bool(gm_peer.verify_with_sm3(f"{r:064x}{s:064x}", msg))

    signer = gm["_signer"]
    gsig = signer.sign_with_sm3(msg)
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), bytes.fromhex("04" + signer.public_key))
    try:
        pub.verify(rs_to_der(int(gsig[:64], 16), int(gsig[64:], 16)), msg, ec.ECDSA(hashes.SM3()))
        gmssl_by_tongsuo = True
    except InvalidSignature:
        gmssl_by_tongsuo = False
    return {"tongsuopy_sig_verified_by_gmssl": tongsuo_by_gmssl, "gmssl_sig_verified_by_tongsuopy": gmssl_by_tongsuo}


def der_to_rs(der: bytes) -> tuple[int, int]:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    return decode_dss_signature(der)


def rs_to_der(r: int, s: int) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    return encode_dss_signature(r, s)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--message-bytes", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=0.5, help="measuring time per operation")
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # one core, as the figures
    msg = os.urandom(args.message_bytes)
    t = bench_tongsuopy(msg, args.seconds)
    g = bench_gmssl(msg, args.seconds)
    c = bench_cryptography(msg, args.seconds)
    result = {
        "message_bytes": args.message_bytes,
        "cpu": cpu,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "interop": cross_check(msg, t, g),
        "tongsuopy": {k: v for k, v in t.items() if not k.startswith("_")},
        "gmssl": {k: v for k, v in g.items() if not k.startswith("_")},
        "cryptography": c,
    }
    rows = [("library", "SM2 sign µs", "SM2 verify µs", "SM3 µs", "SM4-CBC µs", "vectors")]
    for name in ("tongsuopy", "gmssl", "cryptography"):
        r = result[name]
        ok = "ok" if r["sm3_vector_ok"] and r["sm4_vector_ok"] else "WRONG"
        rows.append(
            (
                f"{name} {r['version']}",
                str(r["sm2_sign_us"] or "-"),
                str(r["sm2_verify_us"] or "-"),
                str(r["sm3_us"]),
                str(r["sm4_cbc_us"]),
                ok,
            )
        )
    b = c["baseline"]
    rows.append(
        (
            "ed25519/sha-256 (today)",
            str(b["ed25519_sign_us"]),
            str(b["ed25519_verify_us"]),
            str(b["sha256_us"]),
            "-",
            "-",
        )
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    print("interop:", result["interop"])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
