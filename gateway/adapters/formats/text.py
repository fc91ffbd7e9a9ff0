"""Text decoding for CSV: encoding detection and line-by-line strict decoding.

Departments export CSV as UTF-8 (with or without BOM) or as GBK/GB18030 from
older Windows software. Detection: a BOM wins; otherwise a large prefix that
decodes as strict UTF-8 means UTF-8, anything else is read as GB18030 (a
superset of GB2312 and GBK). Lines are decoded one at a time so a single
undecodable line becomes one row problem instead of stopping the file; in
UTF-8, GBK and GB18030 the byte 0x0A only ever means a line feed, so
splitting bytes on it is safe.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import BinaryIO

PREFIX_BYTES = 4 << 20
_ALIASES = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8", "gb18030": "gb18030", "gbk": "gbk", "gb2312": "gb18030", "cp936": "gbk"}


def detect_encoding(f: BinaryIO, configured: str = "auto") -> tuple[str, int]:
    """(codec name, number of BOM bytes to skip); leaves `f` at offset 0."""
    f.seek(0)
    head = f.read(PREFIX_BYTES)
    f.seek(0)
    bom = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    if configured and configured != "auto":
        enc = _ALIASES.get(configured.lower(), configured)
        return enc, bom if enc == "utf-8" else 0
    if bom:
        return "utf-8", bom
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        # final=False: a multi-byte character cut by the prefix end is not an error.
        dec.decode(head, final=len(head) < PREFIX_BYTES)
        return "utf-8", 0
    except UnicodeDecodeError:
        return "gb18030", 0


class LineDecoder:
    """Iterate decoded lines; remember which lines were bad and why (line number -> reason)."""

    def __init__(self, f: BinaryIO, encoding: str, skip: int, max_line_bytes: int) -> None:
        self.f = f
        self.encoding = encoding
        self.max_line_bytes = max_line_bytes
        self.bad: dict[int, str] = {}
        self.line = 0
        f.seek(skip)

    def __iter__(self) -> Iterator[str]:
        f, limit = self.f, self.max_line_bytes
        while True:
            raw = f.readline(limit + 1)
            if not raw:
                return
            self.line += 1
            if len(raw) > limit and not raw.endswith(b"\n"):
                while True:  # drop the rest of the oversized line without holding it
                    more = f.readline(limit)
                    if not more or more.endswith(b"\n"):
                        break
                self.bad[self.line] = f"行长度超过 {limit} 字节"
                yield "\n"
                continue
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as e:
                snippet = raw[max(0, e.start - 2): e.end + 2].hex(" ")
                self.bad[self.line] = f"第 {e.start + 1} 字节起无法按 {self.encoding} 解码（字节 {snippet}）"
                yield raw.decode(self.encoding, errors="replace")
