"""The sftp adapter against a live OpenSSH sshd on loopback: conformance, host keys, trust CLI, logins."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateway.adapters.base import SourceRow
from gateway.adapters.files.sftp import SftpAdapter
from gateway.cli import cli
from gateway.errors import RowProblem, SourceError
from tests.adapter_conformance import AdapterConformance, make_rows
from tests.fixtures.sshd import Sshd
from tests.test_files_folder import FolderSource, csv_bytes, events, last_position, problems, rows


class SftpSource(FolderSource):
    """Files dropped into a folder the sshd serves; the adapter reads them over SFTP."""

    bulk_rows = 30_000

    def __init__(self, sshd: Sshd, root: Path, known_hosts: Path, **settings: Any) -> None:
        super().__init__(root)
        self.settings = {
            "host": sshd.host, "port": sshd.port, "username": sshd.username, "key_file": str(sshd.client_key),
            "known_hosts": str(known_hosts), "path": str(root), "key_columns": ["id"], "completion": "marker",
            "timeout": 10, **settings,
        }

    def adapter(self, position: Any = None) -> SftpAdapter:  # type: ignore[override]
        return SftpAdapter("remote", self.settings)


@pytest.fixture
def known_hosts(sshd: Sshd, tmp_path: Path) -> Path:
    p = tmp_path / "known_hosts"
    p.write_text(sshd.known_hosts_line())
    return p


@pytest.fixture
def source(sshd: Sshd, tmp_path: Path, known_hosts: Path) -> SftpSource:
    root = tmp_path / "drop"
    root.mkdir()
    return SftpSource(sshd, root, known_hosts)


class TestSftpCsv(AdapterConformance):
    pass


def test_unknown_host_key_is_refused_naming_the_fingerprint(sshd: Sshd, source: SftpSource, known_hosts: Path) -> None:
    known_hosts.write_text("")
    source.write(make_rows(1, 3))
    with pytest.raises(SourceError) as e:
        events(source.adapter())
    msg = str(e.value)
    assert "unknown ssh-ed25519 host key" in msg and sshd.fingerprint() in msg
    assert f"{sshd.host}]:{sshd.port}" in msg and "sftp trust remote" in msg


def test_changed_host_key_stops_the_source_and_reads_nothing(sshd: Sshd, source: SftpSource, known_hosts: Path) -> None:
    impostor_pub = sshd.new_key("old_host_key").with_suffix(".pub")
    known_hosts.write_text(sshd.known_hosts_line(impostor_pub))
    source.write(make_rows(1, 3))
    got: list[Any] = []
    with pytest.raises(SourceError) as e:
        got.extend(source.adapter().fetch(None))
    assert got == [], "nothing is read from a server with a changed key"
    msg = str(e.value)
    assert "HOST KEY CHANGED" in msg and sshd.fingerprint() in msg
    assert "--replace" in msg
    assert len(list(source.root.glob("*.csv"))) == 1, "the file is left untouched"


def _config(tmp_path: Path, sshd: Sshd, known_hosts: Path) -> Path:
    (tmp_path / "gw.key").write_text("unused")
    (tmp_path / "m.toml").write_text("")
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(f"""
[department]
code = "dept01"
name = "测试部门"
[hub]
url = "http://127.0.0.1:9"
[keys]
signing_key = "gw.key"
key_id = "dept01-1"
[[sources]]
name = "remote"
type = "sftp"
record_type = "stock"
mapping = "m.toml"
strategy = "append"
[sources.settings]
host = "{sshd.host}"
port = {sshd.port}
username = "{sshd.username}"
key_file = "{sshd.client_key}"
known_hosts = "{known_hosts}"
path = "{tmp_path}"
key_columns = ["id"]
""")
    return cfg


def test_trust_command_pins_the_key_only_when_confirmed(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "pinned" / "known_hosts"
    cfg = _config(tmp_path, sshd, kh)
    runner = CliRunner()
    r = runner.invoke(cli, ["--config", str(cfg), "sftp", "trust", "remote"], input="n\n")
    assert r.exit_code == 0, r.output
    assert sshd.fingerprint() in r.output and "nothing written" in r.output
    assert not kh.exists()

    r = runner.invoke(cli, ["--config", str(cfg), "sftp", "trust", "remote", "--fingerprint", "SHA256:wrong"])
    assert r.exit_code != 0 and "does not match" in r.output and not kh.exists()

    r = runner.invoke(cli, ["--config", str(cfg), "sftp", "trust", "remote", "--yes", "--fingerprint", sshd.fingerprint()])
    assert r.exit_code == 0, r.output
    assert kh.read_text() == sshd.known_hosts_line()

    (tmp_path / "a.csv").write_bytes(csv_bytes(make_rows(1, 2)))
    (tmp_path / "a.csv.done").write_bytes(b"")
    src = SftpSource(sshd, tmp_path, kh)
    assert len(rows(events(src.adapter()))) == 2, "once trusted, the source reads"


def test_trust_refuses_to_overwrite_a_changed_key_without_replace(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "known_hosts"
    old_keys = [sshd.new_key("old_host_key"), sshd.new_key("old_rsa_key", "rsa")]
    other = "otherhost ssh-ed25519 " + old_keys[0].with_suffix(".pub").read_text().split()[1] + "\n"
    kh.write_text("".join(sshd.known_hosts_line(k.with_suffix(".pub")) for k in old_keys) + other)
    cfg = _config(tmp_path, sshd, kh)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "sftp", "trust", "remote", "--yes"])
    assert r.exit_code == 2 and "--replace" in r.output and "DIFFERENT" in r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg), "sftp", "trust", "remote", "--yes", "--replace"])
    assert r.exit_code == 0, r.output
    lines = kh.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == [f"[{sshd.host}]:{sshd.port}", "otherhost"]
    assert sshd.known_hosts_line().strip() in lines, "both old keys of the host are gone, the new one pinned"


def test_archive_over_sftp_and_nothing_read_twice(source: SftpSource) -> None:
    source.settings["archive_dir"] = "archive"
    source.write(make_rows(1, 4))
    evs = events(source.adapter())
    assert len(rows(evs)) == 4
    assert sorted(os.listdir(source.root)) == ["archive"]
    assert sorted(os.listdir(source.root / "archive")) == ["stock-0001.csv", "stock-0001.csv.done"]
    assert rows(events(source.adapter(), last_position(evs))) == []


def test_hostile_remote_names_are_refused(source: SftpSource) -> None:
    source.settings["completion"] = "atomic"
    (source.root / "line\nbreak.csv").write_bytes(csv_bytes(make_rows(1, 1)))
    os.close(os.open(os.path.join(os.fsencode(source.root), "库存.csv".encode("gbk")), os.O_CREAT | os.O_WRONLY))
    (source.root / "ok.csv").write_bytes(csv_bytes(make_rows(2, 1)))
    evs = events(source.adapter())
    assert [r.key for r in rows(evs)] == ["2"]
    assert sorted(p.rule for p in problems(evs)) == ["filename.control_char", "filename.undecodable"]


def test_gb18030_csv_over_sftp(source: SftpSource) -> None:
    source.drop("id,name,qty,day\r\n1,\"𠀀帐篷,大号\",3,2024-01-01\r\n".encode("gb18030"))
    [row] = rows(events(source.adapter()))
    assert row.data["name"] == "𠀀帐篷,大号" and row.locator == "stock-0001.csv:line 2"


def test_password_login(sshd: Sshd, tmp_path: Path, known_hosts: Path) -> None:
    if not sshd.password_user or not sshd.password_home:
        pytest.skip("could not create a throwaway local user for password login")
    home = sshd.password_home
    for f in home.iterdir():
        f.unlink()
    (home / "p.csv").write_bytes(csv_bytes(make_rows(1, 3)))
    settings = {"host": sshd.host, "port": sshd.port, "username": sshd.password_user, "password": sshd.password,
                "known_hosts": str(known_hosts), "path": str(home), "key_columns": ["id"], "completion": "atomic"}
    assert len(rows(events(SftpAdapter("pw", settings)))) == 3
    with pytest.raises(SourceError, match="login as"):
        events(SftpAdapter("pw", {**settings, "password": "wrong"}))


def test_bad_row_problem_names_column_over_sftp(source: SftpSource) -> None:
    source.write_bad_row()
    [p] = [e for e in events(source.adapter()) if isinstance(e, RowProblem)]
    assert p.field == "name" and p.rule == "csv.undecodable" and p.locator == "stock-0001.csv:line 2 key=900"
    assert not [e for e in events(source.adapter()) if isinstance(e, SourceRow)]


def test_missing_remote_folder_is_a_source_error(source: SftpSource) -> None:
    shutil.rmtree(source.root)
    with pytest.raises(SourceError, match="does not exist"):
        events(source.adapter())


class CuttingRelay:
    """A TCP relay on loopback that cuts the connection after `limit` bytes from the server."""

    def __init__(self, port: int, limit: int) -> None:
        import socket
        import threading

        self.target, self.limit = port, limit
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, self.limit), daemon=True).start()

    @staticmethod
    def _pipe(src: Any, dst: Any, limit: int | None) -> None:
        sent = 0
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                sent += len(data)
                if limit is not None and sent > limit:
                    break
        except OSError:
            pass
        import socket

        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)  # close() alone would not wake the other direction's recv
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()


def test_connection_cut_mid_transfer_is_retried_not_held_against_the_file(source: SftpSource, sshd: Sshd) -> None:
    from gateway.errors import RetriableError

    source.write(make_rows(1, 40_000))  # about 1.5 MB
    relay = CuttingRelay(sshd.port, 300_000)
    try:
        cut = SftpSource(sshd, source.root, Path(source.settings["known_hosts"]))
        cut.settings["port"] = relay.port
        # known_hosts pins the key for the real port; pin it for the relay's port too.
        Path(source.settings["known_hosts"]).write_text(sshd.known_hosts_line() + sshd.known_hosts_line().replace(f":{sshd.port} ", f":{relay.port} "))
        seen: list[Any] = []
        with pytest.raises(RetriableError):
            seen.extend(cut.adapter().fetch(None))
        assert not [e for e in seen if isinstance(e, SourceRow)], "nothing of a half-copied file is read"
    finally:
        relay.close()
    assert len(rows(events(source.adapter()))) == 40_000, "the next poll reads the whole file"


def test_xml_export_dropped_over_sftp(source: SftpSource) -> None:
    from tests.test_xml_source import GBK_EXPORT

    source.settings.update(record_path="x:物资", namespaces={"x": "urn:dept:item"}, key_columns=["@编码"], mode="snapshot")
    source.drop(GBK_EXPORT.format(enc="GBK").encode("gbk"), ".xml")
    evs = events(source.adapter())
    assert [(r.key, r.data["名称"]) for r in rows(evs)] == [("A001", "帐篷（喆牌）"), ("A002", "棉被&褥子")]
    assert [e.snapshot for e in evs if not isinstance(e, (SourceRow, RowProblem))] == [True, False]


def test_growing_remote_file_waits_until_stable(source: SftpSource) -> None:
    source.settings.update(completion="stable", stable_seconds=0)
    data = csv_bytes(make_rows(1, 30))
    f = source.root / "growing.csv"
    f.write_bytes(data[:100])
    first = events(source.adapter())
    with f.open("ab") as out:
        out.write(data[100:])
    second = events(source.adapter(), last_position(first))
    third = events(source.adapter(), last_position(second))
    assert (len(rows(first)), len(rows(second)), len(rows(third))) == (0, 0, 30)
