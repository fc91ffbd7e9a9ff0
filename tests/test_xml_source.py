"""The xml adapter: conformance over a folder of exports, legacy encodings and namespaces, HTTP(S) URLs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from gateway.adapters.files.adapters import XmlAdapter
from gateway.errors import RetriableError, SourceError
from gateway.mappings.compile import load_mapping
from tests.adapter_conformance import AdapterConformance
from tests.test_files_folder import comparable_ledger, events, last_position, problems, rows


def export(rows_: list[dict[str, Any]], encoding: str = "UTF-8") -> bytes:
    items = "".join(
        f'  <物资 id="{r["id"]}">\n    <name>{escape(str(r["name"]))}</name>\n    <qty>{r["qty"]}</qty>\n'
        f'    <day>{r["day"]}</day>\n  </物资>\n'
        for r in rows_
    )
    return f'<?xml version="1.0" encoding="{encoding}"?>\n<导出>\n{items}</导出>\n'.encode(encoding)


class XmlFolderSource:
    # tracemalloc makes lxml's many small allocations slow; flat memory at scale is
    # shown by RSS in test_xml_hostile.py::test_large_export_streams_in_flat_memory.
    bulk_rows = 20_000

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.n = 0
        self.settings = {"path": str(root), "record_path": "/导出/物资", "key_columns": ["@id"], "completion": "marker", **settings}

    def adapter(self, position: Any = None) -> XmlAdapter:
        return XmlAdapter("legacy", self.settings)

    def drop(self, data: bytes) -> str:
        self.n += 1
        name = f"export-{self.n:04d}.xml"
        (self.root / name).write_bytes(data)
        (self.root / f"{name}.ok").write_bytes(b"")
        return name

    def write(self, rows_: list[dict[str, Any]]) -> None:
        self.drop(export(rows_))

    @staticmethod
    def comparable_position(position: Any) -> Any:
        return comparable_ledger(position)

    def write_bad_row(self) -> None:
        self.drop('<?xml version="1.0"?>\n<导出>\n  <物资 id="900">\n    <name>坏行</nmae>\n  </物资>\n</导出>\n'.encode())


@pytest.fixture
def source(tmp_path: Path) -> XmlFolderSource:
    return XmlFolderSource(tmp_path)


class TestXmlFolder(AdapterConformance):
    pass


def test_broken_element_names_file_line_element_and_text(source: XmlFolderSource) -> None:
    source.write_bad_row()
    [p] = problems(events(source.adapter()))
    assert (p.rule, p.locator, p.field) == ("xml.malformed", "export-0001.xml:line 4", "name")
    assert p.value == "<name>坏行</nmae>"


GBK_EXPORT = """<?xml version="1.0" encoding="{enc}"?>
<exp:导出 xmlns:exp="urn:dept:export" xmlns="urn:dept:item">
  <exp:头><exp:单位>某某县应急管理局</exp:单位></exp:头>
  <物资 编码="A001">
    <名称>帐篷（喆牌）</名称>
    <分类>1010100</分类>
    <规格 单位="米"><型号>3×4</型号></规格>
    <单位>顶</单位>
  </物资>
  <!-- 注释 -->
  <物资 编码="A002">
    <名称>棉被&amp;褥子</名称>
    <分类>1010200</分类>
    <规格/>
    <单位>床</单位>
  </物资>
</exp:导出>
"""

XML_MAPPING = """
record_type = "material"
[fields]
material_id = {path = "@编码"}
material_name = {path = "名称"}
category_code = {path = "分类"}
spec_model = {path = "规格/型号"}
unit = {path = "单位"}
reserve_mode = {constant = "1"}
"""


@pytest.mark.parametrize("declared", ["GBK", "GB2312", "GB18030", "UTF-8"])
def test_legacy_encoding_with_namespaces_maps_exactly(tmp_path: Path, declared: str) -> None:
    # Exporters that declare GB2312 routinely write GBK-only characters such as 喆.
    data = GBK_EXPORT.format(enc=declared).encode("gbk" if declared in ("GBK", "GB2312") else declared.lower())
    (tmp_path / "export.xml").write_bytes(data)
    adapter = XmlAdapter("legacy", {
        "path": str(tmp_path / "export.xml"), "record_path": "/exp:导出/i:物资", "completion": "atomic",
        "namespaces": {"exp": "urn:dept:export", "i": "urn:dept:item"}, "key_columns": ["@编码"],
    })
    evs = events(adapter)
    assert problems(evs) == []
    got = rows(evs)
    assert [(r.key, r.locator) for r in got] == [("A001", "export.xml:/导出/物资[1] line 4"), ("A002", "export.xml:/导出/物资[2] line 11")]
    assert got[0].data == {"@编码": "A001", "名称": "帐篷（喆牌）", "分类": "1010100", "规格/@单位": "米", "规格/型号": "3×4", "单位": "顶"}
    mapping = load_mapping(XML_MAPPING, "material")
    assert [mapping.map_row(r) for r in got] == [
        ({"material_id": "A001", "material_name": "帐篷（喆牌）", "category_code": "1010100", "spec_model": "3×4", "unit": "顶", "reserve_mode": "1"}, []),
        ({"material_id": "A002", "material_name": "棉被&褥子", "category_code": "1010200", "unit": "床", "reserve_mode": "1"}, []),
    ]


def test_record_path_forms(tmp_path: Path) -> None:
    data = GBK_EXPORT.format(enc="GBK").encode("gbk")
    (tmp_path / "e.xml").write_bytes(data)
    for path in ("物资", "//物资", "/导出/物资", "{urn:dept:item}物资", "{urn:dept:export}导出/{urn:dept:item}物资"):
        a = XmlAdapter("x", {"path": str(tmp_path / "e.xml"), "record_path": path, "key_columns": ["@编码"], "completion": "atomic"})
        assert [r.key for r in rows(events(a))] == ["A001", "A002"], path
    with pytest.raises(SourceError, match="未声明的命名空间前缀"):
        XmlAdapter("x", {"path": str(tmp_path), "record_path": "q:物资", "key_columns": ["@编码"]})


def test_snapshot_export_read_again_only_when_changed(tmp_path: Path) -> None:
    f = tmp_path / "export.xml"
    f.write_bytes(export([{"id": 1, "name": "帐篷", "qty": 1, "day": "2024-01-01"}]))
    a = {"path": str(f), "record_path": "物资", "key_columns": ["@id"], "completion": "atomic"}
    first = events(XmlAdapter("x", a))
    assert [c.snapshot for c in first if hasattr(c, "snapshot")] == [True, False]
    assert rows(events(XmlAdapter("x", a), last_position(first))) == []
    f.write_bytes(export([{"id": 2, "name": "棉被", "qty": 1, "day": "2024-01-01"}]))
    assert [r.key for r in rows(events(XmlAdapter("x", a), last_position(first)))] == ["2"]


class _Export(BaseHTTPRequestHandler):
    body = b""
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.send_response(self.status)
        self.send_export()

    def send_export(self) -> None:
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def http_export() -> Iterator[tuple[str, type[_Export]]]:
    handler = type("Handler", (_Export,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/%E5%AF%BC%E5%87%BA.xml", handler
    finally:
        server.shutdown()
        server.server_close()


def test_export_served_over_http(http_export: tuple[str, type[_Export]]) -> None:
    url, handler = http_export
    handler.body = GBK_EXPORT.format(enc="GBK").encode("gbk")
    settings = {"url": url, "record_path": "物资", "key_columns": ["@编码"]}
    evs = events(XmlAdapter("web", settings))
    assert [(r.key, r.locator) for r in rows(evs)] == [("A001", "导出.xml:/导出/物资[1] line 4"), ("A002", "导出.xml:/导出/物资[2] line 11")]
    assert rows(events(XmlAdapter("web", settings), last_position(evs))) == [], "unchanged export is not read again"

    handler.body = b"<a>" + b"x" * 5000 + b"</a>"
    [p] = problems(events(XmlAdapter("web", {**settings, "max_file_bytes": 1000})))
    assert p.rule == "file.too_large"

    handler.status = 503
    with pytest.raises(RetriableError):
        events(XmlAdapter("web", settings))
    handler.status = 404
    with pytest.raises(SourceError, match="404"):
        events(XmlAdapter("web", settings))


def test_export_with_a_refused_record_is_not_reported_again_at_every_poll(
    http_export: tuple[str, type[_Export]],
) -> None:
    # No validators: downloaded at every poll. Its refused record is news once, not every 15 minutes.
    url, handler = http_export
    good = {"id": 1, "name": "帐篷", "qty": 1, "day": "2024-01-01"}
    handler.body = export([good, {**good, "id": "", "name": "无编号"}])
    settings = {"url": url, "record_path": "物资", "key_columns": ["@id"]}
    first = events(XmlAdapter("web", settings))
    assert [r.key for r in rows(first)] == ["1"] and [p.rule for p in problems(first)] == ["file.key_missing"]
    again = events(XmlAdapter("web", settings), last_position(first))
    assert rows(again) == [] and problems(again) == []


class _ValidatedExport(_Export):
    """An export server that sends ETag or Last-Modified and answers 304 to a matching conditional GET."""

    etag: str | None = None
    modified: str | None = None
    asked: list[dict[str, str]]  # the conditional headers of each request
    sent_bodies = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        cond = {h: v for h in ("If-None-Match", "If-Modified-Since") if (v := self.headers.get(h))}
        type(self).asked.append(cond)
        unchanged = (self.etag is not None and cond.get("If-None-Match") == self.etag) or (
            self.etag is None and self.modified is not None and cond.get("If-Modified-Since") == self.modified)
        self.send_response(304 if unchanged else 200)
        if self.etag:
            self.send_header("ETag", self.etag)
        if self.modified:
            self.send_header("Last-Modified", self.modified)
        if unchanged:
            self.end_headers()
            return
        type(self).sent_bodies += 1
        self.send_export()


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_unchanged_export_is_not_downloaded_again(validator: str) -> None:
    handler = type("Handler", (_ValidatedExport,), {"asked": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def publish(rows_: list[dict[str, Any]], version: str) -> None:
            handler.body = export(rows_)
            if validator == "etag":
                handler.etag = f'"{version}"'
            else:
                handler.modified = f"Sun, 29 Nov 2026 0{version[-1]}:00:00 GMT"

        settings = {"url": f"http://127.0.0.1:{server.server_address[1]}/export.xml", "record_path": "物资",
                    "key_columns": ["@id"]}
        publish([{"id": 1, "name": "帐篷", "qty": 1, "day": "2024-01-01"}], "v1")
        first = events(XmlAdapter("web", settings))
        assert [r.key for r in rows(first)] == ["1"]
        assert handler.asked == [{}] and handler.sent_bodies == 1

        again = events(XmlAdapter("web", settings), last_position(first))
        assert rows(again) == [] and problems(again) == []
        assert len(handler.asked[1]) == 1, "the second poll asks with the first answer's validator"
        assert handler.sent_bodies == 1, "an unchanged export is not sent again"

        publish([{"id": 1, "name": "帐篷", "qty": 1, "day": "2024-01-01"},
                 {"id": 2, "name": "棉被", "qty": 5, "day": "2024-01-01"}], "v2")
        changed = events(XmlAdapter("web", settings), last_position(again))
        assert sorted(r.key for r in rows(changed)) == ["1", "2"]
        assert handler.sent_bodies == 2
        after = events(XmlAdapter("web", settings), last_position(changed))
        assert rows(after) == [] and handler.sent_bodies == 2, "the new version is remembered in turn"
    finally:
        server.shutdown()
        server.server_close()


def test_path_or_url_required(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="exactly one of path or url"):
        XmlAdapter("x", {"key_columns": ["@id"]})
