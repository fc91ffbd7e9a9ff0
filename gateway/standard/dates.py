"""Strict calendar dates: ISO 'YYYY-MM-DD' out, a few unambiguous clerk forms in.

A date that does not exist (2023-02-30) is an error, never a guess. Accepted
input: date/datetime objects, 'YYYY-MM-DD', 'YYYY/M/D', 'YYYY.M.D',
'YYYY年M月D日', each optionally followed by a time of day (which is dropped).
"""

from __future__ import annotations

import re
from datetime import date, datetime

_FORM = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)


class DateProblem(ValueError):
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


def parse_date(value: object) -> date:
    """A `date` from a date/datetime or a string; DateProblem('date.format'|'date.invalid', reason)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise DateProblem("date.format", "应为日期，格式 YYYY-MM-DD")
    s = value.strip()
    if len(s) == 10 and s[4] == "-" and s[7] == "-" and s[:4].isdigit():
        y, m, d = s[:4], s[5:7], s[8:]
    else:
        match = _FORM.fullmatch(s)
        if match is None:
            raise DateProblem("date.format", "应为日期，格式 YYYY-MM-DD")
        y, m, d = match.groups()
    if not (m.isdigit() and d.isdigit()):
        raise DateProblem("date.format", "应为日期，格式 YYYY-MM-DD")
    try:
        return date(int(y), int(m), int(d))
    except ValueError:
        raise DateProblem("date.invalid", f"{s} 不是存在的日期") from None


def iso_date(value: object) -> str:
    """Canonical 'YYYY-MM-DD' string; raises DateProblem."""
    return parse_date(value).isoformat()
