"""Hostile XML is refused by name, fast and in little memory; big exports stream in flat memory.

Each case runs in a fresh interpreter so its peak RSS can be measured; the
bounds asserted (2 s, 200 MB) are the security limits the issue sets, chosen
generously — they are not benchmarks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.adapters.files.adapters import XmlAdapter
from tests.test_files_folder import events, problems, rows

REPO = Path(__file__).resolve().parents[1]
SECONDS = 2.0
RSS_BYTES = 200 * 1024 * 1024

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
from gateway.adapters.formats import FileUnreadable, FormatOptions, read_rows
path, opts = Path(sys.argv[1]), json.loads(sys.argv[2])
list(read_rows(Path(sys.argv[3]), "warm.xml", "xml", FormatOptions(), "probe"))  # load lxml before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.monotonic()
rule, n = None, 0
try:
    for item in read_rows(path, path.name, "xml", FormatOptions(**opts), "probe"):
        n += 1
except FileUnreadable as e:
    rule = e.rule
secs = time.monotonic() - t0
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({"rule": rule, "rows": n, "seconds": secs, "rss_growth": grown}))
"""


def probe(path: Path, **opts: object) -> dict[str, object]:
    warm = path.parent / "warm.xml"
    warm.write_bytes(b"<r><i>1</i></r>")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), json.dumps(opts), str(warm)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz><item>&lol9;</item></lolz>
"""


def quadratic() -> bytes:
    return (b'<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY a "' + b"x" * 100_000 + b'">]>\n<r><item>'
            + b"&a;" * 10_000 + b"</item></r>")


CASES: dict[str, tuple[bytes, str]] = {
    "billion_laughs": (BILLION_LAUGHS, "xml.entity_declaration"),
    "xxe_file": (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r><i>&x;</i></r>', "xml.entity_declaration"),
    "xxe_parameter": (b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><r/>', "xml.entity_declaration"),
    "external_dtd": (b'<?xml version="1.0"?>\n<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd">\n<r><i>1</i></r>', "xml.external_dtd"),
    "external_dtd_public": (b'<!DOCTYPE r PUBLIC "-//X//Y" "file:///etc/passwd"><r/>', "xml.external_dtd"),
    "doctype_after_comment_and_pi": (b'<?xml version="1.0"?><!-- hi --><?pi x?>\n<!doctype r [<!ENTITY e "x">]><r>&e;</r>', "xml.entity_declaration"),
    "utf16_entities": ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY e "x">]><r>&e;</r>'.encode("utf-16"), "xml.entity_declaration"),
    "deep_10000": (b"<r>" + b"<a>" * 10_000 + b"x" + b"</a>" * 10_000 + b"</r>", "xml.too_deep"),
}


@pytest.mark.parametrize("case", sorted(CASES) + ["quadratic_blowup"])
def test_hostile_xml_is_refused_by_name_within_bounds(tmp_path: Path, case: str) -> None:
    data, rule = (quadratic(), "xml.entity_declaration") if case == "quadratic_blowup" else CASES[case]
    f = tmp_path / "hostile.xml"
    f.write_bytes(data)
    r = probe(f)
    assert r["rule"] == rule
    assert r["rows"] == 0
    assert r["seconds"] < SECONDS and r["rss_growth"] < RSS_BYTES, r


def test_depth_limit_is_a_setting(tmp_path: Path) -> None:
    f = tmp_path / "d.xml"
    f.write_bytes(b"<a>" * 60 + b"</a>" * 60)
    assert probe(f, max_depth=50)["rule"] == "xml.too_deep"
    assert probe(f, max_depth=100)["rule"] is None


@pytest.mark.parametrize("where", ["text", "attribute"])
def test_100_mb_text_node_is_refused_within_bounds(tmp_path: Path, where: str) -> None:
    f = tmp_path / "big.xml"
    chunk = b"x" * (1 << 20)
    with f.open("wb") as out:
        out.write(b'<r><item><name>' if where == "text" else b'<r><item name="')
        for _ in range(100):
            out.write(chunk)
        out.write(b"</name></item></r>" if where == "text" else b'"/></r>')
    r = probe(f)
    assert r["rule"] == "xml.text_too_large", r
    assert r["seconds"] < SECONDS and r["rss_growth"] < RSS_BYTES, r


def test_text_limit_setting_below_the_parser_cap(tmp_path: Path) -> None:
    f = tmp_path / "t.xml"
    f.write_bytes(b"<r><i><n>" + "帐".encode() * 2000 + b"</n></i></r>")
    assert probe(f, max_text_bytes=1000)["rule"] == "xml.text_too_large"


def test_hostile_file_in_a_drop_folder_is_one_problem_and_moved_to_errors(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "bomb.xml").write_bytes(BILLION_LAUGHS)
    (drop / "good.xml").write_bytes('<导出><物资 id="1"><名称>帐篷</名称></物资></导出>'.encode())
    evs = events(XmlAdapter("legacy", {"path": str(drop), "key_columns": ["@id"], "completion": "atomic", "error_dir": "errors"}))
    [p] = problems(evs)
    assert p.rule == "xml.entity_declaration" and "bomb.xml" in p.locator and "bomb.xml" in p.message
    assert [r.key for r in rows(evs)] == ["1"]
    assert (drop / "errors" / "bomb.xml").exists()


@pytest.mark.slow
def test_large_export_streams_in_flat_memory(tmp_path: Path) -> None:
    # Without clearing, lxml would hold a ~170 MB tree for 100,000 records.
    f = tmp_path / "large.xml"
    with f.open("wb") as out:
        out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<export>\n')
        rec = '<item code="{i}"><name>帐篷{i}号</name><spec><model>X-{i}</model></spec><qty>{i}</qty><note>{pad}</note></item>\n'
        pad = "备注" * 20
        for i in range(100_000):
            out.write(rec.format(i=i, pad=pad).encode())
        out.write(b"</export>\n")
    r = probe(f, record_path="item")
    assert r["rule"] is None and r["rows"] == 100_000
    assert r["rss_growth"] < 60 * 1024 * 1024, r
