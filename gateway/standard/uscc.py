"""Unified social credit code (统一社会信用代码), GB 32100-2015.

18 characters: registration authority (1), organisation type (1), division
code (6 digits), organisation identifier (9), check character (1). Characters
come from a 31-symbol alphabet without I, O, S, V, Z, valued 0–30 in order.
"""

from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
LENGTH = 18

_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_DIGITS = frozenset("0123456789")


def check_char(first17: str) -> str:
    """The check character for the first 17 characters; ValueError on a bad length or character."""
    if len(first17) != 17:
        raise ValueError(f"need 17 characters, got {len(first17)}")
    try:
        total = sum(_VALUE[ch] * w for ch, w in zip(first17, WEIGHTS, strict=False))
    except KeyError as e:
        raise ValueError(f"character {e.args[0]!r} is not allowed in a unified social credit code") from None
    return ALPHABET[(31 - total % 31) % 31]


def problem(code: str) -> tuple[str, str] | None:
    """None if `code` is valid, else (rule, Chinese reason). `code` is expected upper-case."""
    if len(code) != LENGTH:
        return "uscc.length", f"应为 18 位，实际 {len(code)} 位"
    bad = [ch for ch in code if ch not in _VALUE]
    if bad:
        return "uscc.charset", f"含有不允许的字符 {''.join(dict.fromkeys(bad))}（不使用 I、O、S、V、Z）"
    if not _DIGITS.issuperset(code[2:8]):
        return "uscc.division", "第 3–8 位应为 6 位数字的行政区划代码"
    expected = check_char(code[:17])
    if code[17] != expected:
        return "uscc.check", f"校验位错误：应为 {expected}"
    return None


def is_valid(code: str) -> bool:
    return isinstance(code, str) and problem(code) is None
