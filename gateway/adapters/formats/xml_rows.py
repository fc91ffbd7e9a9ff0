"""Legacy XML exports, streamed with lxml iterparse under a hardened parser.

A record element is chosen by a path ("/导出/物资", "物资", "{urn:x}items/{urn:x}item",
"x:items/x:item" with a prefix map). Each record becomes one row keyed by
relative paths: "@code" (attribute), "名称" (child text), "规格/型号" (nested),
"规格/@单位" (nested attribute); a repeated element adds "[2]", "[3]", ...
Unprefixed steps match by local name in any namespace, and row keys use local
names, so a mapping need not spell namespaces. Elements are cleared as soon as
they are used, keeping memory flat for any file size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.adapters.formats import FileUnreadable, FormatOptions, ParsedRow
from gateway.adapters.formats.xml_guard import inspect_prolog
from gateway.errors import RowProblem

Step = tuple[str | None, str]  # (namespace URI or None = any, local name or "*")

# libxml2's own limits (huge_tree off) fire with these messages; give them our rule names.
_LIBXML_LIMITS = (
    ("Excessive depth", "xml.too_deep"),
    ("huge text", "xml.text_too_large"),
    ("Text node too long", "xml.text_too_large"),
    ("AttValue length too long", "xml.text_too_large"),
    ("too long", "xml.text_too_large"),
    ("Resource limit", "xml.text_too_large"),
    ("entity reference loop", "xml.entity_declaration"),
    ("amplification", "xml.entity_declaration"),
)


def compile_record_path(path: str | None, namespaces: dict[str, str]) -> tuple[bool, list[Step]]:
    """(absolute?, steps). Default: every child of the root element."""
    if not path:
        return True, [(None, "*"), (None, "*")]
    absolute = path.startswith("/") and not path.startswith("//")
    steps: list[Step] = []
    for raw in _split_steps(path.lstrip("/")):
        if raw.startswith("{"):
            uri, _, local = raw[1:].partition("}")
            steps.append((uri, local))
        elif ":" in raw:
            prefix, _, local = raw.partition(":")
            if prefix not in namespaces:
                raise FileUnreadable("xml.bad_record_path", f"记录路径 {path!r} 使用了未声明的命名空间前缀 {prefix!r}")
            steps.append((namespaces[prefix], local))
        else:
            steps.append((None, raw))
    if not steps or any(not local for _, local in steps):
        raise FileUnreadable("xml.bad_record_path", f"记录路径 {path!r} 无效")
    return absolute, steps


def _split_steps(path: str) -> list[str]:
    out, buf, in_ns = [], "", False
    for ch in path:
        if ch == "{":
            in_ns = True
        elif ch == "}":
            in_ns = False
        if ch == "/" and not in_ns:
            out.append(buf)
            buf = ""
        else:
            buf += ch
    out.append(buf)
    return [s for s in out if s]


def _split_tag(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


def _matches(stack: list[tuple[str | None, str]], absolute: bool, steps: list[Step]) -> bool:
    if len(stack) < len(steps) or (absolute and len(stack) != len(steps)):
        return False
    for (uri, local), (want_uri, want_local) in zip(stack[-len(steps):], steps, strict=True):
        if want_local != "*" and want_local != local:
            return False
        if want_uri is not None and want_uri != (uri or ""):
            return False
    return True


def record_data(elem: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in data:
            n = 2
            while f"{key}[{n}]" in data:
                n += 1
            key = f"{key}[{n}]"
        data[key] = value

    def walk(el: Any, prefix: str) -> None:
        for k, v in el.attrib.items():
            put(f"{prefix}@{_split_tag(k)[1]}", v)
        for child in el.iterchildren(tag=etree.Element):
            path = prefix + _split_tag(child.tag)[1]
            if len(child):
                walk(child, path + "/")
            else:
                for k, v in child.attrib.items():
                    put(f"{path}/@{_split_tag(k)[1]}", v)
                put(path, child.text if child.text is None or child.text.strip() else None)

    walk(elem, "")
    if not len(elem) and elem.text and elem.text.strip():
        data["."] = elem.text
    return data


def read_xml(path: Path, name: str, opts: FormatOptions, source: str) -> Iterator[ParsedRow | RowProblem]:
    absolute, steps = compile_record_path(opts.record_path, opts.namespaces)
    try:
        with open(path, "rb") as f:
            prolog = inspect_prolog(f, opts.encoding)
    except OSError as e:
        raise FileUnreadable("file.unreadable", f"无法打开文件：{e}") from e
    kwargs: dict[str, Any] = dict(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
        dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True,
    )
    if prolog.parse_encoding:
        kwargs["encoding"] = prolog.parse_encoding
    stack: list[tuple[str | None, str]] = []
    in_record = 0
    last_parent: Any = None
    index = 0
    max_text = opts.max_text_bytes
    try:
        for event, elem in _pull(path, kwargs, opts.max_text_bytes):
            if event == "start":
                stack.append(_split_tag(elem.tag))
                if len(stack) > opts.max_depth:
                    raise FileUnreadable("xml.too_deep", f"元素嵌套超过 {opts.max_depth} 层，已拒绝", f"line {elem.sourceline}")
                if in_record or _matches(stack, absolute, steps):
                    in_record += 1
                continue
            text = elem.text
            if text is not None and len(text) * 4 > max_text and len(text.encode("utf-8")) > max_text:
                raise FileUnreadable("xml.text_too_large", f"元素文本超过 {max_text} 字节，已拒绝", f"line {elem.sourceline}")
            if in_record == 1:
                parent = elem.getparent()
                index = index + 1 if parent is last_parent else 1
                last_parent = parent
                where = "/" + "/".join(local for _, local in stack) + f"[{index}]"
                yield ParsedRow(f"{name}:{where} line {elem.sourceline}", record_data(elem))
            stack.pop()
            if in_record:
                in_record -= 1
                if in_record:
                    continue  # part of an enclosing record: keep it until the record is read
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            if parent is not None:
                while elem.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as e:
        msg = str(e)
        rule = next((r for needle, r in _LIBXML_LIMITS if needle.lower() in msg.lower()), "xml.malformed")
        line = e.position[0] if e.position else None
        inside = stack[-(in_record - 1):] if in_record > 1 else stack[-1:]
        field = "/".join(local for _, local in inside) or None
        value = _line_text(path, line, prolog.parse_encoding or prolog.declared_encoding) if line and rule == "xml.malformed" else None
        raise FileUnreadable(rule, f"XML 解析失败：{msg}", f"line {line}" if line else "", field, value) from e


def _pull(path: Path, kwargs: dict[str, Any], max_text: int) -> Iterator[tuple[str, Any]]:
    """Feed the parser in chunks, refusing a run of more than `max_text` bytes without a '<'.

    Neither a text node nor an attribute value can contain '<' (in any encoding we
    accept), so such a run is one oversized value: stop before the parser buffers it.
    """
    parser = etree.XMLPullParser(**kwargs)
    run = 0
    slack = 1 << 16  # room for the markup around a value of exactly max_text bytes
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            first = chunk.find(b"<")
            if first < 0:
                run += len(chunk)
            elif run + first <= max_text + slack:
                run = len(chunk) - chunk.rfind(b"<") - 1
            else:
                run += first
            if run > max_text + slack:
                raise FileUnreadable("xml.text_too_large", f"元素文本或属性值超过 {max_text} 字节，已拒绝")
            try:
                parser.feed(chunk)
            except etree.XMLSyntaxError:
                yield from parser.read_events()  # what was parsed before the error still counts
                raise
            yield from parser.read_events()
        try:
            parser.close()
        except etree.XMLSyntaxError:
            yield from parser.read_events()
            raise
        yield from parser.read_events()


def _line_text(path: Path, line: int, encoding: str | None, limit: int = 200) -> str | None:
    """The start of line `line`, to show the user what the parser choked on."""
    try:
        with open(path, "rb") as f:
            for n, raw in enumerate(iter(lambda: f.readline(1 << 20), b""), 1):
                if n == line:
                    return raw[: limit * 4].decode(encoding or "utf-8", errors="replace").strip()[:limit] or None
    except (OSError, LookupError):
        return None
    return None
