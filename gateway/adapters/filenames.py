"""Which file names a drop folder may hand us, and why the rest are refused.

Names come from a directory listing we do not control (a remote SFTP server,
a shared folder). A name is only ever used as one path component under the
drop folder, so anything that could climb out of it, address another place or
confuse a log line is refused before a single byte is read.
"""

from __future__ import annotations

import fnmatch
import unicodedata

MAX_NAME_BYTES = 255

# Files a producer is still writing, or that are not data.
IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".filepart", ".crdownload", "~")
MARKER_SUFFIXES = (".done", ".ok")

REASONS = {
    "filename.empty": "文件名为空",
    "filename.dot_dot": "文件名含有“..”，可能越出投放目录",
    "filename.absolute": "文件名是绝对路径",
    "filename.separator": "文件名含有路径分隔符",
    "filename.control_char": "文件名含有控制字符",
    "filename.undecodable": "文件名不是有效的 UTF-8 文本",
    "filename.too_long": f"文件名超过 {MAX_NAME_BYTES} 字节",
}


def refusal(name: str) -> str | None:
    """The rule a file name breaks (a key of REASONS), or None when it is safe to use."""
    if not name:
        return "filename.empty"
    if name.startswith("/") or name.startswith("\\") or (len(name) >= 2 and name[1] == ":" and name[0].isalpha()):
        return "filename.absolute"
    if ".." in name:
        return "filename.dot_dot"
    if "/" in name or "\\" in name:
        return "filename.separator"
    for ch in name:
        if 0xD800 <= ord(ch) <= 0xDFFF:  # surrogateescape'd raw byte (or a lone surrogate)
            return "filename.undecodable"
        if _unsafe_char(ch):
            return "filename.control_char"
    try:
        if len(name.encode("utf-8")) > MAX_NAME_BYTES:
            return "filename.too_long"
    except UnicodeEncodeError:
        return "filename.undecodable"
    return None


def _unsafe_char(ch: str) -> bool:
    return 0xD800 <= ord(ch) <= 0xDFFF or (unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") and ch != "\u200d")


def shown(name: str) -> str:
    """`name` with the characters `refusal` objects to escaped: safe for logs, pages and JSON.

    A safe name is returned unchanged (so it can key the position); an unsafe one
    can no longer break a log line, fake a direction of text or upset a JSON encoder.
    """
    if not any(_unsafe_char(ch) for ch in name):
        return name
    return "".join((f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}") if _unsafe_char(ch) else ch for ch in name)


def is_marker(name: str) -> bool:
    return name.lower().endswith(MARKER_SUFFIXES)


def is_ignored(name: str) -> bool:
    """Hidden files and files still being written are skipped silently."""
    low = name.lower()
    return name.startswith(".") or low.endswith(IGNORED_SUFFIXES)


def markers_for(name: str) -> tuple[str, ...]:
    """Marker names that declare `name` complete: data.csv.done, data.csv.ok, data.done, data.ok."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return tuple(dict.fromkeys(f"{base}{suf}" for base in (name, stem) for suf in MARKER_SUFFIXES))


def matches(name: str, pattern: str) -> bool:
    """Glob match; several patterns may be given separated by ';' or ','."""
    pats = [p.strip() for p in pattern.replace(",", ";").split(";") if p.strip()] or ["*"]
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in pats)
