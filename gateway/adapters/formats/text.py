"""Text decoding for CSV: encoding detection and line-by-line strict decoding.

Departments export CSV as UTF-8 (with or without BOM) or as GBK/GB18030 from
older Windows software. Detection: a BOM wins; otherwise a large prefix that
decodes as strict UTF-8 means UTF-8. When it does not, the prefix is judged
line by line (`_judge`): GBK text almost never passes strict UTF-8, so a file
whose non-ASCII lines are mostly valid UTF-8 is UTF-8 with a few damaged
lines, and only those are refused; otherwise it is read as GB18030 (a
superset of GB2312 and GBK). Lines are decoded one at a time so a single
undecodable line becomes one row problem instead of stopping the file; in
UTF-8, GBK and GB18030 the byte 0x0A only ever means a line feed, so
splitting bytes on it is safe.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import BinaryIO

PREFIX_BYTES = 4 << 20
_ALIASES = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8",
    "gb18030": "gb18030",
    "gbk": "gbk",
    "gb2312": "gb18030",
    "cp936": "gbk",
}


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
        return _judge(head, cut=len(head) >= PREFIX_BYTES), 0


def _judge(head: bytes, cut: bool) -> str:
    """UTF-8 or GB18030 for a prefix that is not all valid UTF-8, by counting its lines.

    Evidence for UTF-8 is a line that is valid UTF-8 *and* holds Chinese characters:
    GBK text gives that only by rare accident (a single GBK character never does; one
    like 台 can pass as a Latin letter with an accent), while UTF-8 Chinese often passes
    GB18030 as mojibake, so GB18030-validity proves little. UTF-8 when such lines
    outnumber the invalid ones, or when no invalid line reads as GB18030 either (no
    choice would save those lines, and "not valid UTF-8" names their fault better).
    """
    # One decode of the whole prefix instead of one per line: with surrogateescape every byte that is
    # not valid UTF-8 becomes a lone surrogate, so a line is valid UTF-8 iff its text has none, and
    # encoding it back gives its exact bytes (0x0A never occurs inside a multi-byte sequence).
    lines = head.decode("utf-8", "surrogateescape").split("\n")
    if cut:
        lines.pop()  # the last line may be cut mid-character by the prefix end
    chinese_utf8 = invalid = gb_valid = 0
    for line in lines:
        if line.isascii():
            continue
        if _ESCAPED.search(line) is None:
            chinese_utf8 += _CHINESE.search(line) is not None
        else:
            invalid += 1
            if not gb_valid:  # only whether any invalid line reads as GB18030 decides
                gb_valid = _decodes(line.encode("utf-8", "surrogateescape"), "gb18030")
    if chinese_utf8 > invalid or gb_valid == 0:
        return "utf-8"
    return "gb18030"


_ESCAPED = re.compile("[\udc80-\udcff]")
_CHINESE = re.compile("[\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0003ffff]")


def _decodes(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def has_chinese(text: str) -> bool:
    """At least one CJK ideograph (basic block, extension A, or the supplementary planes' extensions)."""
    return any(
        "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\U00020000" <= c <= "\U0003ffff" for c in text
    )


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
                self.bad[self.line] = self._reason(raw, e)
                yield raw.decode(self.encoding, errors="replace")

    def _reason(self, raw: bytes, e: UnicodeDecodeError) -> str:
        snippet = raw[max(0, e.start - 2) : e.end + 2].hex(" ")
        reason = f"不是有效的 {self.encoding} 编码，第 {e.start + 1} 字节起无法解码（字节 {snippet}）"
        if self.encoding == "utf-8" and _decodes(raw, "gb18030") and has_chinese(raw.decode("gb18030")):
            # One line pasted from a GBK program into a UTF-8 export: say so, do not guess it in.
            reason += "；该行像是 GBK/GB18030 编码，而文件其余部分是 UTF-8，请统一编码后重新投放"
        return reason
