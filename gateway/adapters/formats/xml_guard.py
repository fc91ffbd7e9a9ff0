"""Refuse hostile XML before the parser sees it.

The parser already runs with entities, DTD loading and network off; on top of
that any DOCTYPE that declares entities (billion laughs, quadratic blow-up,
XXE) or points at an external DTD is refused by reading the prolog, so no
entity machinery is ever exercised. Declared GB2312/GBK is read as GB18030,
its superset: legacy exporters routinely declare GB2312 and write GBK.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import BinaryIO

from gateway.adapters.formats import FileUnreadable

PROLOG_LIMIT = 1 << 20
_DECL_ENCODING = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_EXTERNAL_ID = re.compile(r"\b(SYSTEM|PUBLIC)\b")
_SUBSET_END = re.compile(r"\]\s*>")
_UPGRADE = {"gb2312": "gb18030", "gbk": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030", "euc-cn": "gb18030"}


@dataclass
class Prolog:
    declared_encoding: str | None
    parse_encoding: str | None  # override handed to the parser, None = trust the document


def _prolog_text(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    if head.startswith(b"<\x00?\x00"):
        return head.decode("utf-16-le", errors="replace")
    if head.startswith(b"\x00<\x00?"):
        return head.decode("utf-16-be", errors="replace")
    # Every encoding we accept is ASCII-compatible for markup; latin-1 keeps offsets.
    return head.decode("latin-1").removeprefix("\xef\xbb\xbf")


def inspect_prolog(f: BinaryIO, configured_encoding: str = "auto") -> Prolog:
    """Check the document prolog; raise FileUnreadable with a named rule for hostile ones."""
    f.seek(0)
    head = f.read(PROLOG_LIMIT)
    f.seek(0)
    text = _prolog_text(head)
    m = _DECL_ENCODING.match(text)
    declared = m.group(1).lower() if m else None
    _check_doctype(text, complete=len(head) < PROLOG_LIMIT)
    if configured_encoding and configured_encoding != "auto":
        override: str | None = _UPGRADE.get(configured_encoding.lower(), configured_encoding)
    else:
        override = _UPGRADE.get(declared or "")
    return Prolog(declared, override)


def _check_doctype(text: str, complete: bool) -> None:
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            if not complete:
                raise FileUnreadable("xml.prolog_too_large", f"文档开头 {PROLOG_LIMIT} 字节内没有根元素")
            return  # empty or truncated: the parser reports it
        if text.startswith("<?", i):
            end = "?>"
        elif text.startswith("<!--", i):
            end = "-->"
        elif text[i:i + 9].upper() == "<!DOCTYPE":
            _refuse_doctype(text, i + 9, complete)
            return
        else:
            return  # the root element (or junk the parser will reject)
        j = text.find(end, i + 2)
        if j < 0:
            raise FileUnreadable("xml.prolog_too_large", "文档开头的处理指令或注释过长或未结束")
        i = j + len(end)


def _refuse_doctype(text: str, k: int, complete: bool) -> None:
    """`k` is just past '<!DOCTYPE'."""
    gt, lb = text.find(">", k), text.find("[", k)
    if lb >= 0 and (gt < 0 or lb < gt):
        if _EXTERNAL_ID.search(text[k:lb]):
            raise FileUnreadable("xml.external_dtd", "XML 引用外部 DTD，已拒绝（防止 XXE 与网络访问）")
        end = _SUBSET_END.search(text, lb)
        subset = text[lb:end.start() if end else len(text)]
        if "<!ENTITY" in subset.upper() or "%" in subset:
            raise FileUnreadable("xml.entity_declaration", "XML 的 DOCTYPE 中声明了实体，已拒绝（防止实体膨胀与 XXE）")
        if end is None:
            raise FileUnreadable("xml.prolog_too_large", "DOCTYPE 内部子集过长或未结束")
        return
    if gt < 0:
        if not complete:
            raise FileUnreadable("xml.prolog_too_large", "DOCTYPE 过长或未结束")
        return
    if _EXTERNAL_ID.search(text[k:gt]):
        raise FileUnreadable("xml.external_dtd", "XML 引用外部 DTD，已拒绝（防止 XXE 与网络访问）")
