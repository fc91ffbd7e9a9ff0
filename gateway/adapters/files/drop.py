"""The file-drop code path shared by the folder, sftp and xml adapters.

Each poll: list the drop folder; refuse unsafe names (reported once, nothing
read); skip hidden, temporary and marker files and those not yet complete;
copy each new complete file to a local spool file while hashing it; skip a
content (sha256) processed before under any name; stream its rows; commit; and
only then move it to archive_dir / error_dir. See tracking.py for the position.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

from gateway.adapters.base import Adapter, Checkpoint, Event, Position, Setting, SourceRow
from gateway.adapters.batches import DEFAULT_SIZE, BatchEvent, batched
from gateway.adapters.filenames import REASONS, is_ignored, is_marker, markers_for, matches, refusal, shown
from gateway.adapters.files.columnar import CsvBatches
from gateway.adapters.files.settings import DROP, PARSING
from gateway.adapters.files.store import Entry, FileStore
from gateway.adapters.files.tracking import Ledger
from gateway.adapters.formats import FileUnreadable, FormatOptions, ParsedRow, format_for, read_rows
from gateway.adapters.formats.csv_columns import csv_columns
from gateway.adapters.formats.xml_rows import compile_record_path
from gateway.errors import FileRefused, RowProblem, SourceError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_TABULAR = ("csv", "xlsx", "xls")
FileReader = Callable[[Path, Entry, str, Ledger], Iterator[Any]]  # one spooled file's events


def key_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    return str(v)


class FileDropAdapter(Adapter):
    """Base of adapters that read dropped files; subclasses only say where the files are."""

    settings_spec: ClassVar[tuple[Setting, ...]] = DROP + PARSING
    default_format: ClassVar[str | None] = None

    def __init__(self, source: str, settings: Any) -> None:
        merged = {s.name: s.default for s in self.settings_spec}
        merged.update({k: v for k, v in dict(settings).items() if v is not None})
        super().__init__(source, merged)
        s = self.settings
        keys = s["key_columns"]
        self.key_columns: list[str] = [keys] if isinstance(keys, str) else [str(k) for k in keys or []]
        if not self.key_columns:
            raise SourceError(f"source {source}: key_columns is empty; name the column(s) that identify a row")
        self.options = FormatOptions(
            encoding=s["encoding"], delimiter=_unescape(s["delimiter"]), quotechar=s["quotechar"],
            header_row=int(s["header_row"]), sheet=s.get("sheet"), record_path=s.get("record_path"),
            namespaces=dict(s.get("namespaces") or {}), max_depth=int(s["max_depth"]), max_text_bytes=int(s["max_text_bytes"]),
            key_of=self._key,
        )
        try:
            compile_record_path(self.options.record_path, self.options.namespaces)
        except FileUnreadable as e:
            raise SourceError(f"source {source}: {e.message}") from None

    @abstractmethod
    def open_store(self) -> FileStore:
        """Connect to where the files are (raises SourceError / RetriableError)."""

    def completion_rule(self) -> str:
        return str(self.settings["completion"])

    def columns(self) -> list[str] | None:
        """Columns (or XML paths) of the newest matching file, for the mapping editor; None without one."""
        store = self.open_store()
        try:
            pattern = self.settings["pattern"]
            entries = [
                e for e in store.list()
                if refusal(e.name) is None and not is_ignored(e.name) and not is_marker(e.name) and matches(e.name, pattern)
            ]
            if not entries:
                return None
            newest = max(entries, key=lambda e: (e.mtime, e.name))
            spool, _, _ = self._spool(store, newest)
        except (FileUnreadable, OSError):
            return None
        finally:
            store.close()
        try:
            fmt = format_for(newest.name, self.settings["format"] if self.settings["format"] != "auto" else self.default_format)
            if fmt is None:
                return None
            found: dict[str, None] = {}
            with closing(read_rows(spool, newest.name, fmt, self.options, self.source)) as items:
                for n, item in enumerate(items):
                    if isinstance(item, ParsedRow):
                        found.update(dict.fromkeys(item.data))  # XML records may each miss optional elements
                    if n >= 50:
                        break
            return list(found) or None
        except FileUnreadable:
            return None
        finally:
            spool.unlink(missing_ok=True)

    # -- the poll -------------------------------------------------------------------------

    def fetch(self, position: Position | None) -> Iterator[Event]:
        ledger = Ledger.load(position)
        store = self.open_store()
        try:
            yield from self._poll(store, ledger, self._rows)
        finally:
            store.close()

    def fetch_batches(self, position: Position | None, size: int = DEFAULT_SIZE) -> Iterator[BatchEvent]:
        """fetch()'s events in batches; a CSV file that pyarrow reads exactly as the row reader does
        (gateway.adapters.formats.csv_columns) becomes Arrow batches without a dict per row."""
        ledger = Ledger.load(position)
        store = self.open_store()
        size = max(1, size)

        def read(spool: Path, e: Entry, sha: str, ledger: Ledger) -> Iterator[Any]:
            return self._file_batches(spool, e, sha, ledger, size)

        try:
            yield from batched(self._poll(store, ledger, read), size)
        finally:
            store.close()

    def _poll(self, store: FileStore, ledger: Ledger, read: FileReader) -> Iterator[Any]:
        s = self.settings
        now = time.time()
        if (recall := getattr(store, "recall", None)) is not None:
            recall(ledger.seen)
        entries = store.list()
        present = {e.name: e for e in entries}
        ledger.prune({shown(n) for n in present}, now, float(s["remember_days"]), int(s["max_files_remembered"]))
        if ledger.current and ledger.current.get("name") not in present:
            ledger.current = None
        ready: list[Entry] = []
        for e in sorted(entries, key=lambda e: (e.mtime, e.name)):
            rule = refusal(e.name)
            if rule:
                safe = shown(e.name)  # the raw name may not even be valid JSON text
                if ledger.refused.get(safe) != [e.size, e.mtime, rule]:
                    ledger.refused[safe] = [e.size, e.mtime, rule]
                    yield FileRefused(self.source, f"{store.label}/{safe}", None, safe, rule, f"{REASONS[rule]}，已拒绝，未读取")
                continue
            if is_ignored(e.name) or is_marker(e.name) or not matches(e.name, s["pattern"]):
                continue
            if (r := ledger.refused.get(e.name)) and r[:2] == [e.size, e.mtime]:
                continue  # unreadable or too large, reported already; wait for a new version
            sha = ledger.identified(e)
            if sha:
                self._tidy(store, e, ledger, sha, present)  # processed, but the move did not happen yet
                continue
            if self._complete(e, present, ledger, now):
                ready.append(e)
        for e in ready:
            yield from self._take(store, e, ledger, present, read)
        yield Checkpoint(ledger.position())

    def _complete(self, e: Entry, present: dict[str, Entry], ledger: Ledger, now: float) -> bool:
        rule = self.completion_rule()
        if rule == "atomic":
            return True
        if rule == "marker":
            # A marker older than the file marks an earlier version: the file was rewritten since.
            return any(m in present and present[m].mtime >= e.mtime for m in markers_for(e.name))
        return ledger.stable(e, now, float(self.settings["stable_seconds"]))

    def _take(self, store: FileStore, e: Entry, ledger: Ledger, present: dict[str, Entry], read: FileReader) -> Iterator[Any]:
        try:
            spool, sha, size = self._spool(store, e)
        except FileNotFoundError:
            return  # gone between listing and reading
        except (FileUnreadable, OSError) as err:
            rule = err.rule if isinstance(err, FileUnreadable) else "file.unreadable"
            msg = err.message if isinstance(err, FileUnreadable) else str(err)
            ledger.refused[e.name] = [e.size, e.mtime, rule]
            yield FileRefused(self.source, e.name, None, None, rule, f"文件 {e.name} 无法读取：{msg}")
            return
        try:
            if e.size >= 0 and size != e.size:
                ledger.pending[e.name] = [size, e.mtime, time.time()]
                return  # still being written after all: try again next poll
            if ledger.settled(sha, e.name):
                ledger.see(e, sha)
                ledger.pending.pop(e.name, None)
                log.info("skip duplicate content", extra={"fields": {"source": self.source, "file": e.name, "sha256": sha}})
                yield Checkpoint(ledger.position(), note=f"{e.name}: same content as {ledger.files[sha]['name']}, skipped")
                self._tidy(store, e, ledger, sha, present)
                return
            yield from read(spool, e, sha, ledger)
        finally:
            spool.unlink(missing_ok=True)
        self._tidy(store, e, ledger, sha, present)

    def _rows(self, spool: Path, e: Entry, sha: str, ledger: Ledger) -> Iterator[Event]:
        s = self.settings
        append = s["mode"] == "append"
        every = int(s["checkpoint_rows"] or 0)
        cur = ledger.current or {}
        skip = int(cur.get("rows", 0)) if cur.get("sha256") == sha and cur.get("name") == e.name else 0
        count = problems = 0
        status, rule = "done", None
        fmt = format_for(e.name, s["format"] if s["format"] != "auto" else self.default_format)
        changed_at = datetime.fromtimestamp(e.mtime, tz=UTC)  # the file's time is when the source changed these rows
        try:
            if fmt is None:
                raise FileUnreadable("file.unknown_format", "无法由扩展名判断文件格式，请设置 format")
            for item in read_rows(spool, e.name, fmt, self.options, self.source):
                count += 1
                if count == 1 and fmt in _TABULAR and isinstance(item, ParsedRow):
                    missing = [c for c in self.key_columns if c not in item.data]
                    if missing:
                        raise FileUnreadable("file.key_column_missing", f"表头中没有主键列 {', '.join(missing)}")
                if count <= skip:
                    continue
                if isinstance(item, RowProblem):
                    problems += 1
                    yield item
                else:
                    key = self._key(item.data)
                    if key is None:
                        problems += 1
                        yield RowProblem(self.source, item.locator, ",".join(self.key_columns), None, "file.key_missing", "主键列为空，该行无法识别")
                    else:
                        yield SourceRow(key, item.data, item.locator, version=changed_at)
                if append and every and count % every == 0:
                    ledger.current = {"sha256": sha, "name": e.name, "rows": count}
                    yield Checkpoint(ledger.position())
        except FileUnreadable as err:
            problems += 1
            status, rule = "failed", err.rule
            where = f"{e.name}:{err.where}" if err.where else e.name
            yield FileRefused(self.source, where, err.field, err.value, err.rule, f"文件 {e.name} 无法读取：{err.message}")
        yield self._finish(e, sha, ledger, count, problems, status, rule)

    def _finish(self, e: Entry, sha: str, ledger: Ledger, count: int, problems: int, status: str, rule: str | None) -> Checkpoint:
        """Record the file in the ledger; the file's last checkpoint."""
        s = self.settings
        if status == "done" and problems:
            # Some lines were refused: the file goes to error_dir, and the same bytes dropped
            # again are read again (its good rows are then unchanged, so nothing is enqueued twice).
            status = "partial"
        ledger.record(e, sha, status, time.time(), problems, rule)
        snapshot = s["mode"] == "snapshot" and status == "done"
        note = f"{e.name}: {count} rows, {problems} problem(s)"
        if s["mode"] == "snapshot" and not snapshot:
            note += "; not a complete snapshot, deletes not inferred"
        return Checkpoint(ledger.position(), snapshot=snapshot, note=note)

    def _file_batches(self, spool: Path, e: Entry, sha: str, ledger: Ledger, size: int) -> Iterator[Any]:
        """One file's events for fetch_batches: columnar for a CSV file csv_columns is sure of, else _rows."""
        s = self.settings
        cur = ledger.current or {}
        resuming = cur.get("sha256") == sha and cur.get("name") == e.name and int(cur.get("rows", 0)) > 0
        fmt = format_for(e.name, s["format"] if s["format"] != "auto" else self.default_format)
        blocks = csv_columns(spool, self.options) if fmt == "csv" and not resuming else None
        if blocks is None:
            yield from self._rows(spool, e, sha, ledger)
            return
        every = int(s["checkpoint_rows"] or 0) if s["mode"] == "append" else 0
        reader = CsvBatches(self.source, e.name, self.key_columns, datetime.fromtimestamp(e.mtime, tz=UTC), size, every)
        status, rule = "done", None
        try:
            for item in reader.events(blocks):
                if isinstance(item, CsvBatches.Due):  # a checkpoint inside an append file
                    ledger.current = {"sha256": sha, "name": e.name, "rows": item.count}
                    yield Checkpoint(ledger.position())
                else:
                    yield item
        except FileUnreadable as err:
            reader.problems += 1
            status, rule = "failed", err.rule
            where = f"{e.name}:{err.where}" if err.where else e.name
            yield FileRefused(self.source, where, err.field, err.value, err.rule, f"文件 {e.name} 无法读取：{err.message}")
        if reader.missing_key_columns:
            # Let the row reader refuse the file, naming the missing key column, as fetch() does.
            yield from self._rows(spool, e, sha, ledger)
            return
        yield self._finish(e, sha, ledger, reader.count, reader.problems, status, rule)

    def _key(self, data: dict[str, Any]) -> str | None:
        parts = []
        for c in self.key_columns:
            t = key_text(data.get(c))
            if t is None:
                return None
            parts.append(t)
        return "|".join(parts)

    def _spool(self, store: FileStore, e: Entry) -> tuple[Path, str, int]:
        """Copy the file to a private local temp file while hashing it: (path, sha256, bytes)."""
        limit = int(self.settings["max_file_bytes"])
        if e.size > limit:
            raise FileUnreadable("file.too_large", f"文件大小 {e.size} 字节超过上限 {limit}")
        # Keep the extension: openpyxl decides by it whether it may open a workbook.
        suffix = "".join(c for c in Path(e.name).suffix[:12] if c.isascii() and (c.isalnum() or c == "."))
        fd, tmp = tempfile.mkstemp(prefix="gw-drop-", suffix=suffix, dir=self.settings.get("spool_dir"))
        path = Path(tmp)
        h, n = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, store.open(e.name) as src:
                while chunk := src.read(_CHUNK):
                    n += len(chunk)
                    if n > limit:
                        raise FileUnreadable("file.too_large", f"文件超过大小上限 {limit} 字节")
                    h.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path, h.hexdigest(), n

    def _tidy(self, store: FileStore, e: Entry, ledger: Ledger, sha: str, present: dict[str, Entry]) -> None:
        info = ledger.files[sha]
        folder = self.settings.get("archive_dir") if info.get("status") == "done" else self.settings.get("error_dir")
        if not folder or not store.can_move:
            return
        try:
            dest = store.move(e.name, folder)
            # The name is free again: a new file under it (a corrected export of the same
            # size and mtime, as SFTP's whole-second mtimes make likely) must be hashed anew.
            ledger.seen.pop(e.name, None)
            for m in markers_for(e.name):
                if m in present:
                    store.move(m, folder)
            log.info("moved file", extra={"fields": {"source": self.source, "file": e.name, "to": dest}})
        except OSError as err:  # stays in place; the next poll tries again
            log.warning("could not move file", extra={"fields": {"source": self.source, "file": e.name, "error": str(err)}})


def _unescape(delimiter: str) -> str:
    return {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(delimiter, delimiter)
