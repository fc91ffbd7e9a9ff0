"""Agreement and plan attachments: content-addressed files, type checked by content.

A file is stored once under `<dir>/<sha256[:2]>/<sha256>`, written to a
temporary name, fsync'd and renamed, so a crash never leaves half a file under
its hash. With `[at_rest] cipher = "sm4"` the file is an SM4-GCM envelope
(gateway/at_rest/); its name stays the SHA-256 of the plaintext, so dedup and the
digests in receipts keep their meaning. Every read checks the file against its
name (and the envelope's tag): a tampered file is refused, never served.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.at_rest.envelope import StoredDataInvalid
from gateway.at_rest.keyring import OFF, KeyRing
from gateway.at_rest.stored import Tally, read_stored, rekey_file, write_stored
from gateway.hub import tables
from gateway.hub.db import utcnow, write_tx

OLE2 = bytes.fromhex("D0CF11E0A1B11AE1")
# A lower hub forwarding a file names the department it belongs to (one of the relay's area); a
# department's gateway uploads its own files and sends no such header.
DEPARTMENT_HEADER = "Attachment-Department"


class AttachmentRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredAttachment:
    sha256: str
    size: int
    type: str

    def as_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "size": self.size, "type": self.type}


def detect_type(data: bytes, name: str | None = None) -> str | None:
    """pdf, doc, wps, docx or ofd judged by content (the name only tells doc from wps)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(OLE2):
        return "wps" if (name or "").lower().endswith(".wps") else "doc"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, ValueError):
            return None
        if any(n.startswith("word/") for n in names):
            return "docx"
        if any(n == "OFD.xml" or n.endswith("/OFD.xml") for n in names):
            return "ofd"
    return None


def path_for(base: Path, sha256: str) -> Path:
    return base / sha256[:2] / sha256


def store_attachment(engine: Engine, base: Path, data: bytes, *, department: str, name: str | None, max_bytes: int,
                     ring: KeyRing = OFF) -> StoredAttachment:
    if len(data) > max_bytes:
        raise AttachmentRefused("too_large", f"附件超过大小上限 {max_bytes} 字节 / attachment larger than {max_bytes} bytes")
    if not data:
        raise AttachmentRefused("attachment_type", "附件为空 / empty attachment")
    kind = detect_type(data, name)
    if kind is None:
        raise AttachmentRefused(
            "attachment_type", "附件类型不支持，仅限 pdf、doc、docx、wps、ofd（按内容判断）/ attachment must be pdf, doc, docx, wps or ofd by content"
        )
    digest = hashlib.sha256(data).hexdigest()
    target = path_for(base, digest)
    if not target.exists():
        write_stored(target, data, ring, 0o644)
    try:
        with write_tx(engine) as conn:
            if conn.execute(select(tables.attachments.c.sha256).where(tables.attachments.c.sha256 == digest)).first() is None:
                conn.execute(insert(tables.attachments).values(
                    sha256=digest, size=len(data), type=kind, name=name, department=department, stored_at=utcnow()
                ))
    except IntegrityError:
        pass  # the same file uploaded at the same moment by another request: stored either way
    return StoredAttachment(digest, len(data), kind)


def attachment_info(engine: Engine, sha256: str) -> dict | None:
    with engine.connect() as conn:
        row = conn.execute(select(tables.attachments).where(tables.attachments.c.sha256 == sha256)).mappings().first()
    return dict(row) if row else None


def _check_digest(sha256: str, path: Path) -> Callable[[bytes], None]:
    def check(plaintext: bytes) -> None:
        if hashlib.sha256(plaintext).hexdigest() != sha256:
            raise StoredDataInvalid(
                f"附件 {path} 内容与其 SHA-256 不符，已被篡改或损坏，拒绝读取 / attachment {path}: "
                f"content does not match its SHA-256 {sha256}: tampered or damaged"
            )
    return check


def read_attachment(base: Path, sha256: str, ring: KeyRing = OFF) -> bytes:
    """The stored file's bytes, checked against its name; StoredDataInvalid when tampered or damaged."""
    path = path_for(base, sha256)
    data = read_stored(path, ring, "附件 / attachment")
    _check_digest(sha256, path)(data)
    return data


def stored_files(base: Path) -> Iterator[tuple[str, Path]]:
    """(sha256, path) of every attachment file under `base` (temporary files skipped)."""
    if not base.is_dir():
        return
    for sub in sorted(base.iterdir()):
        if sub.is_dir() and len(sub.name) == 2:
            for f in sorted(sub.iterdir()):
                if f.is_file() and len(f.name) == 64 and f.name.startswith(sub.name):
                    yield f.name, f


def rekey_attachments(base: Path, ring: KeyRing, *, write: bool = True) -> Tally:
    """Rewrite every attachment under the current key (plaintext when off); a damaged one stops it, named."""
    tally = Tally()
    for sha256, path in stored_files(base):
        rekey_file(path, ring, "附件 / attachment", tally, write=write, check=_check_digest(sha256, path))
    return tally
