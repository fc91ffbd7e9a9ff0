"""Refuse hostile XLSX packages before openpyxl opens them: the check lives in gateway.workbook.guard
(the hub's workbook import uses it too); here it raises the file sources' FileUnreadable."""

from __future__ import annotations

from pathlib import Path

from gateway.adapters.formats import FileUnreadable
from gateway.workbook.guard import PackageRefused, check_package


def check_xlsx(path: Path, max_unpacked: int) -> None:
    try:
        check_package(path, max_unpacked)
    except PackageRefused as e:
        raise FileUnreadable(e.rule, e.message) from e
