"""The position of a file-drop source: which file contents were processed.

Stored as JSON by the sync pipeline::

    {
      "files":   {sha256: {"name", "size", "mtime", "done_at", "status": "done"|"partial"|"failed", "problems"}},
      "seen":    {name: [size, mtime, sha256(, version)]},  # listing entries already identified
      "pending": {name: [size, mtime, seen_at]},     # 'stable' rule: first sighting
      "refused": {name: [size, mtime, rule]},        # unsafe names already reported
      "current": {"sha256", "name", "rows"}          # mid-file resume point (append mode)
    }

A content (sha256) is processed once, whatever its name, unless some of its
lines were refused ("partial"): dropped again (after it was moved away, or
under another name), it is read again, so that the refusal is reported again
rather than the file silently skipped. Bounded: "seen",
"pending" and "refused" only hold names present in the last listing; "files"
entries of contents no longer in the folder are dropped after `remember_days`
and the table never exceeds `max_files` entries (oldest first).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.files.store import Entry


@dataclass
class Ledger:
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, list[Any]] = field(default_factory=dict)
    pending: dict[str, list[Any]] = field(default_factory=dict)
    refused: dict[str, list[Any]] = field(default_factory=dict)
    current: dict[str, Any] | None = None

    @classmethod
    def load(cls, position: Any) -> Ledger:
        if not isinstance(position, dict):
            return cls()
        p = copy.deepcopy(position)
        return cls(p.get("files") or {}, p.get("seen") or {}, p.get("pending") or {}, p.get("refused") or {}, p.get("current"))

    def position(self) -> dict[str, Any]:
        out: dict[str, Any] = {"files": self.files, "seen": self.seen, "pending": self.pending, "refused": self.refused}
        if self.current:
            out["current"] = self.current
        return copy.deepcopy(out)

    def identified(self, e: Entry) -> str | None:
        """The sha256 of an entry already hashed in an earlier poll (same name, size, mtime)."""
        s = self.seen.get(e.name)
        if s and s[0] == e.size and s[1] == e.mtime and s[2] in self.files and seen_version(s) == e.version:
            return str(s[2])
        return None

    def settled(self, sha: str, name: str) -> bool:
        """This content was processed before and need not be read again as `name`. A "partial" one is
        read again when dropped again, not when the same name still shows it (an export URL without
        validators, downloaded at every poll, would report its refused lines at every poll)."""
        info = self.files.get(sha)
        if info is None:
            return False
        s = self.seen.get(name)
        return info.get("status") != "partial" or (s is not None and s[2] == sha)

    def see(self, e: Entry, sha: str) -> None:
        self.seen[e.name] = [e.size, e.mtime, sha, e.version] if e.version else [e.size, e.mtime, sha]

    def stable(self, e: Entry, now: float, settle_seconds: float) -> bool:
        """'stable' rule: same size and mtime as at an earlier poll at least `settle_seconds` ago."""
        p = self.pending.get(e.name)
        if p and p[0] == e.size and p[1] == e.mtime:
            return now - float(p[2]) >= settle_seconds
        self.pending[e.name] = [e.size, e.mtime, now]
        return False

    def record(self, e: Entry, sha: str, status: str, now: float, problems: int = 0, rule: str | None = None) -> None:
        entry: dict[str, Any] = {"name": e.name, "size": e.size, "mtime": e.mtime, "done_at": now, "status": status}
        if problems:
            entry["problems"] = problems
        if rule:
            entry["rule"] = rule
        self.files[sha] = entry
        self.see(e, sha)
        self.pending.pop(e.name, None)
        self.current = None

    def prune(self, present: set[str], now: float, remember_days: float, max_files: int) -> None:
        for table in (self.seen, self.pending, self.refused):
            for name in [n for n in table if n not in present]:
                del table[name]
        live = {s[2] for s in self.seen.values()}
        horizon = now - remember_days * 86400
        for sha in [k for k, v in self.files.items() if k not in live and float(v.get("done_at", 0)) < horizon]:
            del self.files[sha]
        if len(self.files) > max_files:
            for sha in sorted(self.files, key=lambda k: float(self.files[k].get("done_at", 0)))[: len(self.files) - max_files]:
                del self.files[sha]


def seen_version(s: list[Any]) -> str:
    """The version of a "seen" entry; entries written before versions existed have none."""
    return str(s[3]) if len(s) > 3 else ""
