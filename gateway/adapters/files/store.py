"""Where dropped files live: list them, read one as a stream, move it away.

The drop logic (gateway.adapters.files.drop) sees only this interface, so the
local folder, SFTP and HTTP transports share every rule about completeness,
exactly-once and hostile names.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from gateway.errors import SourceError


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    size: int
    mtime: float
    # The server's validator for this content (HTTP: 'etag:...' or 'lm:...'), "" where there is none.
    version: str = ""


class FileStore(Protocol):
    label: str  # where, for messages: "/srv/drop", "sftp://host:22/out"
    can_move: bool

    def list(self) -> list[Entry]: ...

    # Optional: `recall(seen)` before `list()` hands a store the ledger's identified entries
    # ({name: [size, mtime, sha256, version?]}), so that it can ask a server "changed since?".

    def open(self, name: str) -> BinaryIO: ...

    def move(self, name: str, folder: str) -> str: ...

    def close(self) -> None: ...


def free_name(exists: Callable[[str, str], bool], folder: str, name: str) -> str:
    """`name`, or `name` with a time stamp when the target folder already has one."""
    if not exists(folder, name):
        return name
    stem, dot, ext = name.rpartition(".")
    stamp = time.strftime("%Y%m%d%H%M%S")
    n = 1
    while True:
        cand = f"{stem}.{stamp}-{n}.{ext}" if dot else f"{name}.{stamp}-{n}"
        if not exists(folder, cand):
            return cand
        n += 1


class LocalStore:
    """A folder on this machine. Symlinks are never followed (listed or opened)."""

    can_move = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.label = str(self.root)

    def list(self) -> list[Entry]:
        out = []
        try:
            with os.scandir(self.root) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        out.append(Entry(e.name, st.st_size, st.st_mtime))
        except FileNotFoundError:
            raise SourceError(f"drop folder {self.root} does not exist") from None
        except OSError as e:
            raise SourceError(f"cannot list drop folder {self.root}: {e}") from None
        return out

    def open(self, name: str) -> BinaryIO:
        fd = os.open(self.root / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")

    def _folder(self, folder: str) -> Path:
        p = Path(folder).expanduser()
        return p if p.is_absolute() else self.root / p

    def move(self, name: str, folder: str) -> str:
        target = self._folder(folder)
        target.mkdir(parents=True, exist_ok=True)
        final = free_name(lambda d, n: (target / n).exists(), str(target), name)
        try:
            os.replace(self.root / name, target / final)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            shutil.move(self.root / name, target / final)  # archive on another file system: copy, then delete
        return str(target / final)

    def close(self) -> None:
        pass
