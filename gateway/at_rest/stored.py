"""Files the product writes itself (attachments, generated secrets, key files), sealed as the KeyRing says,
and their rekey. Writes go through files.write_file (whole, fsync'd, renamed into place), so a reader sees
the old file or the new one, never half of either: that is what lets `rekey` run beside a live service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.at_rest.envelope import StoredDataInvalid, key_id_of
from gateway.at_rest.files import in_credentials, write_file
from gateway.at_rest.keyring import KeyRing


def write_stored(path: Path, plaintext: bytes, ring: KeyRing, mode: int = 0o600) -> None:
    write_file(path, ring.seal(plaintext), mode)


def read_stored(path: Path, ring: KeyRing, what: str) -> bytes:
    return ring.open(path.read_bytes(), f"{what} {path}")


@dataclass
class Tally:
    """How the files of one kind are stored: counts by key id ("plaintext" for none) before and after a rekey."""

    before: dict[str, int] = field(default_factory=dict)
    rewritten: int = 0
    damaged: list[str] = field(default_factory=list)  # why each refused file was refused (left as it is)

    def count(self, key_id: str | None) -> None:
        name = key_id or "plaintext"
        self.before[name] = self.before.get(name, 0) + 1

    def line(self, kind: str, ring: KeyRing) -> str:
        held = ", ".join(f"{n} {k}" for k, n in sorted(self.before.items())) or "none"
        target = f"key {ring.current}" if ring.on else "plaintext"
        bad = f"; {len(self.damaged)} damaged, left as they are" if self.damaged else ""
        return f"{kind}: {sum(self.before.values())} file(s) ({held}); {self.rewritten} rewritten as {target}{bad}"


def rekey_file(path: Path, ring: KeyRing, what: str, tally: Tally, *, write: bool = True,
               check: Callable[[bytes], None] | None = None) -> None:
    """Rewrite one stored file under the ring's current key (or as plaintext when off) unless it is already.

    The file is opened first (tag checked; `check(plaintext)` may refuse it too): a damaged one is
    counted in `tally.damaged` and left as it is, never sealed afresh over the damage.
    """
    data = path.read_bytes()
    try:
        tally.count(key_id_of(data, f"{what} {path}"))
        plaintext = ring.open(data, f"{what} {path}")
        if check is not None:
            check(plaintext)
    except StoredDataInvalid as e:
        tally.damaged.append(str(e))
        return
    if write and not ring.is_current(data):
        write_file(path, ring.seal(plaintext), path.stat().st_mode & 0o777)
        tally.rewritten += 1


def rekey_secrets(files: list[tuple[Path, str]], ring: KeyRing, *, write: bool = True) -> tuple[Tally, list[Path]]:
    """Rekey the secret files the product wrote itself; (tally, those left alone as systemd credentials)."""
    tally, skipped = Tally(), []
    for path, what in files:
        if not path.is_file():
            continue
        if in_credentials(path):
            skipped.append(path)
            continue
        rekey_file(path, ring, what, tally, write=write)
    return tally, skipped
