"""Writing a stored file whole: temporary name, fsync, rename; and telling systemd credentials apart."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def in_credentials(path: Path) -> bool:
    """Whether `path` is a systemd credential (read-only, encrypted by systemd if so set up): never rewritten."""
    cdir = os.environ.get("CREDENTIALS_DIRECTORY")
    return bool(cdir) and Path(path).resolve().is_relative_to(Path(cdir).resolve())
