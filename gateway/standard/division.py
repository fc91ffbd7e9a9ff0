"""Administrative division codes: GB/T 2260 six digits, or twelve with township and village.

Only the structure and the province prefix are checked here; a hub may load a
dated code list and check membership.
"""

from __future__ import annotations

# GB/T 2260 province-level prefixes (incl. 71 Taiwan, 81 Hong Kong, 82 Macao).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)


def problem(code: str) -> tuple[str, str] | None:
    """None if `code` is a well-formed division code, else (rule, Chinese reason)."""
    if len(code) not in (6, 12) or not code.isascii() or not code.isdigit():
        return "division.format", "应为 6 位或 12 位数字"
    if code[:2] not in PROVINCES:
        return "division.province", f"前两位 {code[:2]} 不是有效的省级代码"
    return None


def is_valid(code: str) -> bool:
    return isinstance(code, str) and problem(code) is None
