"""CSV text encoding: UTF-8 with or without BOM, or GB18030 (a superset of GB2312 and GBK).

A BOM wins; otherwise a large prefix that decodes as strict UTF-8 means
UTF-8; anything else is GB18030. Lines are decoded one at a time so one
undecodable line spoils one row, not the file (0x0A is a line feed and
nothing else in all three encodings, so splitting bytes on it is safe).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

PREFIX_BYTES = 4 << 20
ALIASES = {"utf8": "utf-8", "utf-8-sig": "utf-8-sig", "gbk": "gbk", "gb2312": "gb18030", "cp936": "gbk"}


def detect(head: bytes, *, complete: bool) -> str:
    """'utf-8-sig', 'utf-8' or 'gb18030' for a file starting with `head` (`complete`: head is the whole file)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        # final=False: a multi-byte character cut by the prefix end is not an error.
        codecs.getincrementaldecoder("utf-8")("strict").decode(head, final=complete)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def detect_file(f: BinaryIO) -> str:
    f.seek(0)
    head = f.read(PREFIX_BYTES)
    f.seek(0)
    return detect(head, complete=len(head) < PREFIX_BYTES)


class Lines:
    """Decoded lines of a binary file; `bad` maps 1-based line number -> reason."""

    def __init__(self, f: BinaryIO, encoding: str) -> None:
        self.f = f
        self.encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        self.bad: dict[int, str] = {}
        f.seek(len(codecs.BOM_UTF8) if encoding == "utf-8-sig" and f.read(3) == codecs.BOM_UTF8 else 0)

    def __iter__(self) -> Iterator[str]:
        for n, raw in enumerate(self.f, start=1):
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as e:
                self.bad[n] = f"第 {e.start + 1} 字节起无法按 {self.encoding} 解码"
                yield raw.decode(self.encoding, errors="replace")
