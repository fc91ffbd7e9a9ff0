"""Refuse hostile XLSX packages before openpyxl opens them.

An XLSX is a zip of XML parts. No genuine workbook part carries a DOCTYPE, so
any part that does (entity tricks inside the package) is refused, and so is a
package whose parts would inflate beyond a sane size or ratio (a zip bomb).
Shared by the gateway's file sources and both sides' workbook readers.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

MAX_RATIO = 200  # genuine sheets compress ~5-20x; bombs reach thousands
PROLOG_BYTES = 4096


class PackageRefused(Exception):
    """The XLSX package is not opened; `rule` names why, the message says it in Chinese."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def check_package(path: Path, max_unpacked: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise PackageRefused("xlsx.unreadable", f"不是有效的 XLSX 文件：{e}") from e
    with zf:
        total = 0
        for info in zf.infolist():
            total += info.file_size
            if total > max_unpacked or (info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1)):
                raise PackageRefused("xlsx.zip_bomb", f"XLSX 解压后过大（{info.filename} {info.file_size} 字节），已拒绝")
            if not info.filename.endswith((".xml", ".rels", ".vml")):
                continue
            try:
                with zf.open(info) as part:
                    head = part.read(PROLOG_BYTES)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
                raise PackageRefused("xlsx.unreadable", f"XLSX 部件 {info.filename} 无法读取：{e}") from e
            up = head.upper()
            if b"<!DOCTYPE" in up or b"<!ENTITY" in up:
                raise PackageRefused("xlsx.doctype", f"XLSX 部件 {info.filename} 含有 DOCTYPE/实体声明，已拒绝")
