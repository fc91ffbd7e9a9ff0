"""Emergency-material classification codes, GB/T 38565-2020.

Seven digits in four levels, 1 + 2 + 2 + 2: level 1 is 1, 2 or 3; levels 2–4
are 01–99 with 99 the catch-all (收容类目) of its parent. A code of a higher
level pads the lower levels with 00, so no non-zero segment may follow a 00.

The structure is always checked. Membership is checked only against a code
table the operator configures (CSV `code,name`, see data/gbt38565.csv), and
only as deep as the table knows: a table listing no level-3 codes under
1010000 accepts any structurally valid 10101xx. The catch-all 99 is accepted
under every listed parent, as the standard defines it at every level.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

LEVEL1 = frozenset("123")
BUILTIN_TABLE = Path(__file__).parent / "data" / "gbt38565.csv"


def segments(code: str) -> tuple[str, str, str, str]:
    return code[0], code[1:3], code[3:5], code[5:7]


def level(code: str) -> int:
    """Level of a structurally valid code: 1 for 1000000, 4 for 1010101."""
    _, s2, s3, s4 = segments(code)
    return 1 + sum(1 for s in (s2, s3, s4) if s != "00")


def structure_problem(code: str) -> str | None:
    """None if the structure is valid, else a Chinese reason."""
    if len(code) != 7 or not code.isascii() or not code.isdigit():
        return "应为 7 位数字（1+2+2+2 四层）"
    if code[0] not in LEVEL1:
        return f"第一层（大类）应为 1、2 或 3，实际为 {code[0]}"
    seen_zero = False
    for name, seg in zip(("中类", "小类", "细类"), segments(code)[1:], strict=False):
        if seg == "00":
            seen_zero = True
        elif seen_zero:
            return f"{name}代码 {seg} 出现在 00 之后（上层代码以 00 补足，其后不得再有非零层）"
    return None


def parent(code: str) -> str | None:
    """The code one level up, e.g. 1010100 -> 1010000; None for level 1."""
    lv = level(code)
    if lv == 1:
        return None
    cut = 1 + 2 * (lv - 2)
    return code[:cut] + "0" * (7 - cut)


@dataclass(frozen=True, eq=False)  # identity equality: hashable, so contexts holding one stay hashable
class CategoryTable:
    """A loaded code table: code -> name, plus which codes have listed children."""

    version: str
    names: Mapping[str, str]
    parents_with_children: frozenset[str]

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str]], version: str = "") -> CategoryTable:
        names = {code: name for code, name in rows}
        with_children = frozenset(p for p in (parent(c) for c in names) if p is not None)
        # Level-1 codes have the virtual root as parent: mark it when any are listed.
        if any(level(c) == 1 for c in names):
            with_children |= {""}
        return cls(version, MappingProxyType(names), with_children)

    def membership_problem(self, code: str) -> str | None:
        """None if every level of `code` that the table covers is listed (or a 99 catch-all)."""
        chain: list[str] = []
        c: str | None = code
        while c is not None:
            chain.append(c)
            c = parent(c)
        up = ""  # virtual root
        for c in reversed(chain):
            if up in self.parents_with_children and c not in self.names and segments(c)[level(c) - 1] != "99":
                return f"代码 {c} 不在分类代码表中（代码表版本 {self.version or '未注明'}）"
            up = c
        return None

    def name(self, code: str) -> str | None:
        return self.names.get(code)


def load_table(path: str | Path | None = None) -> CategoryTable:
    """Load a CSV code table (`code,name`; lines starting with '#' are comments; a
    '# version: X' comment names the version). None loads the table shipped with the package.
    Raises ValueError naming the file and line of any malformed or structurally invalid code."""
    p = Path(path) if path is not None else BUILTIN_TABLE
    version = ""
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    with p.open(encoding="utf-8-sig", newline="") as f:
        for lineno, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            first = row[0].strip()
            if first.startswith("#"):
                text = ",".join(row).lstrip("#").strip()
                if text.lower().startswith("version:"):
                    version = text.split(":", 1)[1].strip()
                continue
            if first == "code":  # header
                continue
            name = row[1].strip() if len(row) > 1 else ""
            why = structure_problem(first)
            if why:
                problems.append(f"{p}:{lineno}: {first!r}: {why}")
            else:
                rows.append((first, name))
    if problems:
        raise ValueError("bad category code table:\n" + "\n".join(problems))
    return CategoryTable.from_rows(rows, version)
