"""A detached signature over a workbook's digest, so a level above that has no hub yet can check a
spreadsheet it was sent with the sender's public key alone (`gateway verify-workbook`).

The signature file (`<workbook>.sig.json`) holds a manifest — the workbook's name, size and
digest (SHA-256 under ed25519, SM3 under sm2-sm3), who signed with which key, the department,
period and record counts — and the suite's signature over the manifest's canonical JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.protocol.canonical import canonical_json
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.suites import PrivateKey, suite_of

FORMAT = "emergency-workbook-signature/1"
SUFFIX = ".sig.json"


class WorkbookSignatureError(Exception):
    """The workbook does not match its signature; the message says why, in Chinese and English."""


def signature_path(workbook: Path) -> Path:
    return workbook.with_name(workbook.name + SUFFIX)


def _digest_name(suite_name: str) -> str:
    return "sm3" if suite_name == "sm2-sm3" else "sha-256"


def sign_workbook(workbook: Path, key: PrivateKey, key_id: str, facts: dict[str, Any]) -> Path:
    """Write `<workbook>.sig.json` beside it; `facts` (signer, department, period, counts) go into the manifest."""
    s = suite_of(key)
    body = workbook.read_bytes()
    manifest = {
        "format": FORMAT, "file": workbook.name, "size": len(body),
        "digest": {"alg": _digest_name(s.name), "value": base64.b64encode(s.digest(body)).decode()},
        "suite": s.name, "key_id": key_id, "signed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **facts,
    }
    signature = base64.b64encode(s.sign(key, canonical_json(manifest))).decode()
    out = signature_path(workbook)
    out.write_text(json.dumps({"manifest": manifest, "signature": signature}, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


@dataclass
class VerifiedWorkbook:
    manifest: dict[str, Any]
    renamed: bool  # the file's name is not the one signed (allowed: the digest is what counts)


def verify_workbook(workbook: Path, public_key_text: str, signature_file: Path | None = None) -> VerifiedWorkbook:
    """Check `workbook` against its signature file with the signer's public key line."""
    sig_path = signature_file or signature_path(workbook)
    try:
        doc = json.loads(sig_path.read_text(encoding="utf-8"))
        manifest, signature = doc["manifest"], base64.b64decode(doc["signature"], validate=True)
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WorkbookSignatureError(f"签名文件 {sig_path} 无法读取或格式不对 / unreadable signature file: {e}") from None
    public = public_key_from_text(public_key_text)
    s = suite_of(public)
    if manifest.get("suite") != s.name:
        raise WorkbookSignatureError(
            f"签名使用 {manifest.get('suite')} 算法，所给公钥属于 {s.name} / signed under {manifest.get('suite')}, key is {s.name}")
    if not s.verify(public, signature, canonical_json(manifest)):
        raise WorkbookSignatureError("签名无效：不是该公钥所签，或签名文件被改动 / bad signature for this key")
    body = workbook.read_bytes()
    digest = manifest.get("digest") or {}
    if digest.get("alg") != _digest_name(s.name) or base64.b64encode(s.digest(body)).decode() != digest.get("value"):
        raise WorkbookSignatureError(
            f"工作簿 {workbook.name} 与签名不符：内容在签名后被改动（摘要不一致）/ the workbook changed after it was signed")
    return VerifiedWorkbook(manifest, renamed=manifest.get("file") != workbook.name)
