"""The `folder` and `xml` adapters (the `sftp` one is in sftp.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from gateway.adapters.base import Setting
from gateway.adapters.files.drop import FileDropAdapter
from gateway.adapters.files.http_store import HttpStore
from gateway.adapters.files.settings import DROP, PARSING
from gateway.adapters.files.store import FileStore, LocalStore
from gateway.errors import SourceError


class FolderAdapter(FileDropAdapter):
    """A drop folder on this machine (or a mounted share): the embedded default."""

    name = "folder"
    settings_spec: ClassVar[tuple[Setting, ...]] = (Setting("path", str, required=True, path=True, help="Drop folder"),) + DROP + PARSING

    def open_store(self) -> FileStore:
        root = Path(self.settings["path"]).expanduser()
        if not root.is_dir():
            raise SourceError(f"source {self.source}: drop folder {root} does not exist or is not a folder")
        return LocalStore(root)


def _xml_settings() -> tuple[Setting, ...]:
    over = {
        "mode": Setting("mode", str, default="snapshot", choices=("append", "snapshot"),
                        help="snapshot (default): each export is the full set; append: each file is a delta"),
        "format": Setting("format", str, default="xml", choices=("xml",), help="Always xml"),
        "pattern": Setting("pattern", str, default="*.xml", help="File name glob when path is a folder"),
    }
    return tuple(over.get(s.name, s) for s in DROP + PARSING)


class XmlAdapter(FileDropAdapter):
    """Legacy XML from a file, a folder of exports, or an HTTP(S) URL."""

    name = "xml"
    default_format = "xml"
    settings_spec: ClassVar[tuple[Setting, ...]] = (
        Setting("path", str, path=True, help="An XML file, or a folder of XML files (give path or url)"),
        Setting("url", str, help="HTTP(S) URL that serves the export (give path or url)"),
        Setting("ca_file", str, help="CA bundle for the URL's TLS certificate"),
        Setting("timeout", (int, float), default=60, help="HTTP timeout, seconds"),
    ) + _xml_settings()

    def __init__(self, source: str, settings: object) -> None:
        super().__init__(source, settings)  # type: ignore[arg-type]
        if bool(self.settings.get("path")) == bool(self.settings.get("url")):
            raise SourceError(f"source {source}: give exactly one of path or url")
        self.settings["format"] = "xml"
        path = self.settings.get("path")
        p = Path(path).expanduser() if path else None
        if p is not None and (p.is_file() or (not p.is_dir() and p.suffix.lower() == ".xml")):
            # One file (perhaps not exported yet): its folder is the store, its name the only pattern.
            self.settings["path"], self.settings["pattern"] = str(p.parent), _glob_literal(p.name)

    def completion_rule(self) -> str:
        return "atomic" if self.settings.get("url") else super().completion_rule()

    def open_store(self) -> FileStore:
        if self.settings.get("url"):
            return HttpStore(self.settings["url"], float(self.settings["timeout"]), int(self.settings["max_file_bytes"]), self.settings.get("ca_file"))
        root = Path(self.settings["path"]).expanduser()
        if not root.is_dir():
            raise SourceError(f"source {self.source}: XML path {root} does not exist")
        return LocalStore(root)


def _glob_literal(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
