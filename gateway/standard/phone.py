"""Telephone numbers: mainland mobile or landline with area code and optional extension."""

from __future__ import annotations

import re

# Mobile: 1[3-9] + 9 digits. Landline: 0 + 2–3 digit area code, optional '-',
# 7–8 digit number, optional extension ('-123', '转123', 'ext123').
_PHONE = re.compile(r"1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:(?:-|转|ext\.?|#)\d{1,6})?", re.ASCII | re.IGNORECASE)
_NOISE = str.maketrans("", "", " ()（）")  # clerks type spaces and brackets around area codes


def normalize(value: str) -> str:
    """Drop spaces/brackets and a +86 prefix; the rest is kept as typed."""
    v = value.translate(_NOISE)
    if v.startswith("+86"):
        v = v[3:].lstrip("-")
    return v


def is_valid(value: str) -> bool:
    return _PHONE.fullmatch(normalize(value)) is not None
