"""extract -> map -> validate -> detect change -> enqueue, for one source.

The source position, fingerprints and outbox rows of each chunk commit in one
state-store transaction. Strategies (SourceConfig.strategy):

- cursor: read rows past the saved cursor (minus the lag window); unchanged
  re-reads are recognised by their fingerprint; `reconcile_deletes` reads the
  key set afterwards to find deleted rows (keyset.py: one anti-join of the
  source's and the stored key sets as Arrow arrays);
- fingerprint: read everything; records not seen since the scan began are deletes
  (on batches compared and covered in memory against the stored digests read once:
  passdigests.py);
- append: every checkpointed piece is a delta; nothing is deleted;
- snapshot: the rows between Checkpoint(snapshot=True) markers are the full set.

A new mapping version makes cursor sources re-read from the start, so every
record is re-evaluated and those whose mapped version differs are re-enqueued.

Rows arrive as RowBatches (batchstep.py: the adapter's fetch_batches, or the
row path's fetch() grouped) and are mapped and validated a chunk at a time, at
commit: a row whose raw digest (rowhash.py, arrowhash.py: the row's values plus
the mapping, its version and the validation inputs) equals its record's stored
one is only marked seen, since mapping it again would give the stored version;
the others are mapped together (map_batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from gateway.adapters import registry
from gateway.adapters.base import Adapter, Checkpoint, SourceRow
from gateway.adapters.batches import RowBatch
from gateway.config import GatewayConfig, SourceConfig
from gateway.errors import FatalError, FileRefused, MappingError, RowProblem
from gateway.logs import log
from gateway.mappings import CompiledMapping, current_version, load_mapping
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.validate import ValidationContext
from gateway.store.db import begin_immediate, checkpoint, checkpoint_deferred, utcnow
from gateway.store.tables import source_positions, sync_runs
from gateway.sync import batchstep, held
from gateway.sync import problems as current_problems
from gateway.sync.changes import ChangeWriter, Counts, Mapped, iso_versions
from gateway.sync.keyset import KeySet
from gateway.sync.keyset import reconcile as reconcile_keys
from gateway.sync.lock import source_lock
from gateway.sync.passdigests import PassDigests
from gateway.sync.rowhash import inputs_digest

LOG = logging.getLogger("gateway.sync")
COMMIT_ROWS = 2000  # rows per transaction when the adapter checkpoints less often
# Rows per transaction of a fingerprint pass with its digests in memory, on an adapter whose checkpoints
# only mark positions: the pass restarts from the beginning whatever it committed, so its commits only
# bound memory and the write transaction, and each costs a fixed ~2 ms (the position, the chunk's lookups).
FULL_PASS_ROWS = 20000
KEEP_PROBLEMS = 1000  # problems kept in memory and in sync_runs; the count covers all

Progress = Callable[[int], None]


@dataclass
class SyncSummary:
    source: str
    rows_read: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    files_refused: int = 0  # whole files refused (FileRefused): not rows, so not in rows_read
    problems: list[RowProblem] = field(default_factory=list)
    seconds: float = 0.0
    mapping_version: int | None = None
    run_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "rows_read": self.rows_read, "new": self.new, "changed": self.changed,
            "deleted": self.deleted, "unchanged": self.unchanged, "rejected": self.rejected,
            "files_refused": self.files_refused,
            "problems": [p.as_dict() for p in self.problems], "seconds": round(self.seconds, 3),
            "mapping_version": self.mapping_version, "run_id": self.run_id, "notes": self.notes,
        }

    def __str__(self) -> str:
        return (
            f"读取 {self.rows_read} 行；新增 {self.new}，变更 {self.changed}，删除 {self.deleted}，"
            f"未变 {self.unchanged}，拒收 {self.rejected}"
            + (f"；拒绝文件 {self.files_refused} 个" if self.files_refused else "")
        )


def open_adapter(config: GatewayConfig, sc: SourceConfig) -> Adapter:
    cls = registry.adapter_class(sc.type)
    settings = dict(sc.settings)
    names = {s.name for s in getattr(cls, "settings_spec", ())}
    if "lag_seconds" in names and sc.lag_seconds and not settings.get("lag_seconds"):
        settings["lag_seconds"] = sc.lag_seconds
    return cls(sc.name, settings)


def source_rows(config: GatewayConfig) -> Callable[[str], Iterator[dict[str, Any]]]:
    """Rows of another configured source, for `lookup = {source = ...}` tables."""

    def rows(name: str) -> Iterator[dict[str, Any]]:
        with open_adapter(config, config.source(name)) as a:
            for e in a.fetch(None):
                if isinstance(e, SourceRow):
                    yield e.data

    return rows


def compile_source(
    config: GatewayConfig, sc: SourceConfig, text: str | None = None, columns: list[str] | None = None,
) -> CompiledMapping:
    """Compile `sc`'s mapping (its file, or `text`) exactly as a sync does: lookups may read other
    sources and values are checked with the config's [standard] units and category codes. Sync,
    `mapping preview`, `mapping check` and the mapping form all compile through here."""
    if sc.mapping is None:
        raise FatalError(f"source {sc.name} has no mapping file")
    if text is None:
        text = sc.mapping.read_text(encoding="utf-8")
    try:
        mapping = load_mapping(
            text, sc.record_type, columns, source=sc.name, base_dir=sc.mapping.parent, source_rows=source_rows(config),
            context=ValidationContext.from_config(config),
        )
    except MappingError as e:
        raise MappingError(e.problems, e.file or str(sc.mapping)) from None
    mapping.file = str(sc.mapping)
    return mapping


def compile_for(config: GatewayConfig, sc: SourceConfig, engine: Engine, operator: str = "system") -> CompiledMapping:
    if sc.mapping is None:
        raise FatalError(f"source {sc.name} has no mapping file")
    text = sc.mapping.read_text(encoding="utf-8")
    mapping = compile_source(config, sc, text)
    mapping.version = current_version(engine, sc.name, text, author=operator)
    return mapping


def _load_state(conn: Connection, source: str) -> dict[str, Any]:
    raw = conn.execute(select(source_positions.c.position).where(source_positions.c.source == source)).scalar()
    return orjson.loads(raw) if raw else {}


def _save_state(conn: Connection, source: str, state: dict[str, Any]) -> None:
    body = orjson.dumps(state).decode()
    now = utcnow()
    n = conn.execute(
        source_positions.update().where(source_positions.c.source == source).values(position=body, updated_at=now)
    ).rowcount
    if not n:
        conn.execute(source_positions.insert().values(source=source, position=body, updated_at=now))


class _Run:
    """The state of one sync run: buffered rows, counts, the position to commit next."""

    def __init__(
        self, engine: Engine, sc: SourceConfig, mapping: CompiledMapping, operator: str, progress: Progress | None,
        inputs: bytes | None = None,
    ) -> None:
        self.engine, self.sc, self.mapping, self.progress = engine, sc, mapping, progress
        self.inputs = inputs  # rowhash.inputs_digest; None = map every row
        self.path = batchstep.PATH
        self.writer = ChangeWriter(sc.name, sc.record_type, mapping.version, operator)
        self.summary = SyncSummary(sc.name, mapping_version=mapping.version)
        self.raw: list[RowBatch] = []  # read, not yet mapped (see _map_chunk)
        self.buffer: list[Mapped] = []
        self.rejected_keys: list[str] = []
        # Upkeep of current_problems at commit: rows refused in this chunk, rows read valid.
        self.refused_rows: list[current_problems.Refused] = []
        self.valid_keys: list[str] = []
        self.unread = 0  # adapter RowProblems since the last snapshot marker
        self.refused: list[held.Refusal] = []  # refused rows others may name (held.py)
        self.locators: dict[str, str] = {}  # source key -> locator of the buffered rows that name others
        self.released = 0  # records held for one of this run's records, enqueued now
        self.commits = 0
        # A fingerprint pass's stored digests, read once at its start (passdigests.py); None = looked up per chunk.
        self.pass_digests: PassDigests | None = None
        self._key_fields = RECORD_TYPES[sc.record_type].key
        with engine.connect() as conn:
            self.state = _load_state(conn, sc.name)
            # The rows listed now: a valid row costs a set lookup, a DELETE only when it was listed.
            self.listed = current_problems.listed_keys(conn, sc.name)

    def problem(self, p: RowProblem) -> None:
        """A row the adapter could not read (the mapping's refusals go through _map)."""
        self._keep(p)
        self.refused_rows.append(current_problems.unreadable(p))

    def _keep(self, p: RowProblem) -> None:
        if len(self.summary.problems) < KEEP_PROBLEMS:
            self.summary.problems.append(p)

    def rows(self, batch: RowBatch) -> None:
        self.summary.rows_read += len(batch)
        if self.inputs is None:
            self._map(batch, None)
        else:
            self.raw.append(batch)

    def _map_chunk(self, conn: Connection) -> list[str]:
        """Map the buffered raw rows whose digest differs from their record's stored one; returns the
        others (unchanged: mapping them would give the stored version): their record keys, or with pass
        digests their source keys."""
        batches, self.raw = self.raw, []
        if not batches:
            return []
        inputs = self.inputs
        assert inputs is not None
        if self.pass_digests is not None:
            return self._compare_chunk(batches, inputs, self.pass_digests)
        have = self.writer.row_hashes(conn, [k for b in batches for k in b.keys])
        conn.rollback()  # a plain read: end it before mapping, so no snapshot is held meanwhile
        same: list[str] = []
        for b in batches:
            digests = self.path.digests(b, inputs)
            changed, kept = batchstep.changed_rows(b, digests, have)
            same += [rkey for _, rkey in kept]
            if self.listed:  # valid_keys only clear listed problems (listed changes at commit, after that)
                locators = b.locators
                for i, _ in kept:
                    self.valid_keys += (b.keys[i], locators[i])
            if changed:
                self._map(b.take(changed), [digests[i] for i in changed])
        return same

    def _compare_chunk(self, batches: list[RowBatch], inputs: bytes, pass_digests: PassDigests) -> list[str]:
        """_map_chunk against the pass's digests: the whole chunk digested and compared at once; returns
        the unchanged rows' source keys."""
        digests = self.path.chunk_digests(batches, inputs)
        keys = [k for b in batches for k in b.keys]
        changed, unchanged = pass_digests.compare(keys, [d for ds in digests for d in ds])
        if self.listed:  # valid_keys only clear listed problems (listed changes at commit, after that)
            locators = [loc for b in batches for loc in b.locators]
            for i in unchanged:
                self.valid_keys += (keys[i], locators[i])
        at, start = 0, 0
        for b, ds in zip(batches, digests, strict=True):
            end, mine = start + len(b), []
            while at < len(changed) and changed[at] < end:
                mine.append(changed[at] - start)
                at += 1
            if mine:
                self._map(b.take(mine), [ds[i] for i in mine])
            start = end
        return [keys[i] for i in unchanged]

    def _map(self, batch: RowBatch, digests: list[bytes] | None) -> None:
        results = self.path.map(self.mapping, batch)
        keys, locators = batch.keys, batch.locators
        versions = iso_versions(batch.versions)
        references = self.sc.record_type in held.REFERENCES
        key_fields = self._key_fields
        valid_keys, buffer = self.valid_keys, self.buffer
        for i, (record, problems) in enumerate(results):
            key = keys[i]
            if record is None:
                self._refuse(SourceRow(key, batch.dicts()[i], locators[i], batch.versions[i]), problems)
                continue
            # The locator too: it keys an unreadable line, which a corrected file now reads valid.
            valid_keys += (key, locators[i])
            # What record_key() gives, without its per-call lookups.
            get = record.get
            rkey = "|".join(["" if (k := get(f)) is None else str(k) for f in key_fields])
            if references:
                self.locators[key] = locators[i]
            buffer.append(Mapped(key, rkey, record, versions[i], None if digests is None else digests[i]))

    def _refuse(self, row: SourceRow, problems: list[RowProblem]) -> None:
        self.summary.rejected += 1
        self.rejected_keys.append(row.key)
        for p in problems:
            self._keep(_keyed(p, row.key))
        if (rkey := held.refused_key(self.mapping, row.data)) is not None:
            self.refused.append(held.Refusal(rkey, row.key, "；".join(p.message for p in problems)))
        self.refused_rows.append(current_problems.refused_row(self.sc.record_type, self.mapping, row, problems))

    def commit(
        self, extra: Callable[[Connection], None] | None = None, prepare: Callable[[Connection], None] | None = None
    ) -> None:
        with self.engine.connect() as conn:
            same = self._map_chunk(conn)
            if prepare is not None:  # slow reads (the key set) happen before the write lock is taken
                prepare(conn)
                conn.commit()
            with checkpoint_deferred(conn), conn.begin():
                begin_immediate(conn)
                kept, held_back = held.hold_for(conn, self.writer, self.buffer)
                counts = self.writer.write(conn, kept)
                # Rows unchanged by their raw digest: only marked seen, in the same transaction as the
                # position, like every other outcome of the chunk (a pass with its digests in memory
                # covers them there instead, and names their records only when one may release others).
                if self.pass_digests is None:
                    self._held(conn, kept, held_back, same)
                    self.writer.touch(conn, same)
                else:
                    may = held.may_release(conn, self.sc.record_type)
                    self._held(conn, kept, held_back, self.writer.record_keys_of(conn, same) if may else [])
                    self.pass_digests.committed(counts.rekeyed)
                counts.unchanged += len(same)
                self.writer.mark_seen(conn, self.rejected_keys + [h.item.source_key for h in held_back])
                if self.listed:
                    fixed = [k for k in self.valid_keys if k in self.listed]
                    current_problems.clear(conn, self.sc.name, fixed)
                    self.listed.difference_update(fixed)
                if self.refused_rows:
                    current_problems.record(conn, self.sc.name, self.sc.record_type, self.refused_rows)
                    self.listed.update(r.source_key for r in self.refused_rows)
                if extra is not None:
                    extra(conn)
                _save_state(conn, self.sc.name, self.state)
        self._count(counts)
        self.commits += 1
        for h in held_back:
            self.summary.rejected += 1
            where = self.locators.get(h.item.source_key, "")
            self._keep(_keyed(RowProblem(self.sc.name, where, h.field, h.value, h.rule, h.message), h.item.source_key))
        self.buffer, self.rejected_keys, self.refused, self.locators = [], [], [], {}
        self.refused_rows, self.valid_keys = [], []
        if self.progress is not None:
            self.progress(self.summary.rows_read)

    def _held(self, conn: Connection, kept: list[Mapped], held_back: list[held.Held], same: list[str]) -> None:
        """Local refusals of this chunk and what they hold back or release (held.py), in its transaction."""
        rtype = self.sc.record_type
        held.discard(conn, self.sc.name, rtype, [m.record_key for m in kept], self.rejected_keys)
        held.record_refusals(conn, self.sc.name, rtype, self.refused)
        # Rows unchanged by their digest map cleanly too (a refused row never has a stored digest).
        self.released += held.release(conn, rtype, [m.record_key for m in kept] + same, self.writer.operator)

    def _count(self, c: Counts) -> None:
        s = self.summary
        s.new, s.changed, s.unchanged, s.deleted = s.new + c.new, s.changed + c.changed, s.unchanged + c.unchanged, s.deleted + c.deleted

    def deletes_at_snapshot_end(self, conn: Connection) -> None:
        epoch = self.state.get("epoch")
        if epoch is None:
            return
        # Rows refused before this pass and not refused again in it are fixed or gone.
        current_problems.clear_unseen(conn, self.sc.name, epoch)
        if self.unread:
            self.summary.notes.append(f"本次有 {self.unread} 行无法读取，为免误删，未处理删除")
        else:
            if self.pass_digests is not None:
                self.summary.deleted += self.writer.delete_source_keys(conn, self.pass_digests.gone())
            else:
                self.summary.deleted += self.writer.delete_unseen(conn, epoch)
            held.discard_unseen(conn, self.sc.name, self.sc.record_type, epoch)
            self.released += held.refusals_unseen(conn, self.sc.name, self.sc.record_type, epoch, self.writer.operator)
        self.unread = 0


def _keyed(p: RowProblem, key: str) -> RowProblem:
    """Name the row's key beside its place: a file line (`kucun.csv:line 5`) alone does not say which record."""
    if "key=" not in p.locator:
        p.locator = f"{p.locator} key={key}"
    return p


class MassDeleteHeld(FatalError):
    """A whole-source read would delete more than the source's max_delete_fraction of its records."""


def sync_source(
    config: GatewayConfig, source_name: str, engine: Engine, *, operator: str = "system", progress: Progress | None = None,
    allow_mass_delete: bool = False,
) -> SyncSummary:
    """Run one extract cycle of `source_name`; recorded in sync_runs. Raises on a fatal/retriable failure
    (SyncBusy when another sync of the same source is running; MassDeleteHeld after committing everything
    but the held-back deletes, unless `allow_mass_delete`)."""
    sc = config.source(source_name)
    with source_lock(config.state_path, sc.name):
        return _sync_locked(config, sc, engine, operator, progress, allow_mass_delete)


def _sync_locked(
    config: GatewayConfig, sc: SourceConfig, engine: Engine, operator: str, progress: Progress | None, allow_mass_delete: bool,
) -> SyncSummary:
    started, t0 = utcnow(), time.monotonic()
    with engine.begin() as conn:
        # Holding the lock, any run still marked running was killed before it could finish.
        conn.execute(
            sync_runs.update().where(sync_runs.c.source == sc.name, sync_runs.c.status == "running")
            .values(status="interrupted", error="进程中断（下次同步已从上次保存的位置继续）")
        )
        run_id = int(conn.execute(sync_runs.insert().values(source=sc.name, started_at=started, status="running")).inserted_primary_key[0])
    summary: SyncSummary | None = None
    try:
        mapping = compile_for(config, sc, engine, operator)
        run = _Run(engine, sc, mapping, operator, progress, inputs_digest(config, sc, mapping))
        run.writer.max_delete_fraction = 1.0 if allow_mass_delete else sc.max_delete_fraction
        summary = run.summary
        summary.run_id = run_id
        try:
            with open_adapter(config, sc) as adapter:
                _extract(run, adapter)
        finally:
            checkpoint(engine)  # once for the run's chunk commits (checkpoint_deferred)
        if run.writer.held_deletes is not None:
            n, live = run.writer.held_deletes
            raise MassDeleteHeld(
                f"源 {sc.name} 本次读取将删除 {n} 条记录（现有 {live} 条的 {n / max(live, 1):.0%}），超过 "
                f"max_delete_fraction = {sc.max_delete_fraction:g}：源表可能被清空或读取不全，这些删除未执行，"
                f"其余变更已入队。核实后运行 gateway sync {sc.name} --allow-mass-delete 确认删除 / source {sc.name}: "
                f"this read would delete {n} of {live} live records, more than max_delete_fraction; the deletes were "
                f"held back, every other change was enqueued"
            )
        if run.released:
            summary.notes.append(f"{run.released} 条此前因引用本源未通过校验的记录而暂缓的记录已入队")
        summary.seconds = time.monotonic() - t0
        _finish(engine, run_id, summary, "ok", None)
        log(LOG, logging.INFO, "sync finished", **{k: v for k, v in summary.as_dict().items() if k != "problems"})
        return summary
    except BaseException as e:
        s = summary or SyncSummary(sc.name)
        s.seconds = time.monotonic() - t0
        _finish(engine, run_id, s, "failed", f"{type(e).__name__}: {e}")
        log(LOG, logging.ERROR, "sync failed", source=sc.name, run_id=run_id, error=str(e), error_type=type(e).__name__)
        raise


def _extract(run: _Run, adapter: Adapter) -> None:
    sc, state = run.sc, run.state
    strategy = sc.strategy
    mv = run.mapping.version
    full = strategy in ("fingerprint",)
    if strategy == "cursor" and state.get("mapping_version") not in (None, mv):
        # New mapping: re-read everything once; fingerprints keep unchanged records quiet.
        state.pop("adapter", None)
        run.summary.notes.append(f"映射已更新为版本 {mv}，全部记录重新评估")
    if full:
        # A whole-source pass always reads from the start, even after an interrupted one: resuming
        # at the saved position would never re-read rows before it that changed meanwhile, and the
        # pass would end "ok" with those records stale. The rows the interrupted pass already took
        # cost only a read and a digest now (unchanged raw digest: marked seen, not mapped again).
        if not state.get("complete", True):
            run.summary.notes.append("上次全量读取被中断，本次从头重新读取（已处理且未变的行只做比对）")
        state.pop("adapter", None)
        state["epoch"] = utcnow()  # records not seen after this are deletes at the end of the scan
        if run.inputs is not None:
            with run.engine.connect() as conn:
                run.pass_digests = run.path.pass_digests(conn, sc.name, sc.record_type)
    if strategy == "snapshot" and not state.get("epoch"):
        state["epoch"] = utcnow()
    state["mapping_version"] = mv
    state["complete"] = False
    start = state.get("adapter")
    since_commit = 0
    # A whole-source pass never resumes from a position: commit more rows at a time (FULL_PASS_ROWS).
    long_chunks = full and run.pass_digests is not None and not adapter.acts_after_checkpoint
    limit = FULL_PASS_ROWS if long_chunks else COMMIT_ROWS
    for event in run.path.read(adapter, start, COMMIT_ROWS):
        if isinstance(event, RowBatch):
            # At most COMMIT_ROWS rows per commit, wherever the adapter's batches end. A full chunk is
            # committed when more rows come, not at once: an adapter checkpointing every COMMIT_ROWS rows
            # (the SQL adapter's default chunk) then commits once per chunk, rows and position together,
            # instead of the rows and then an empty transaction for the position.
            while since_commit + len(event) > limit:
                head, event = batchstep.split(event, limit - since_commit)
                if len(head):
                    run.rows(head)
                run.commit()  # position unchanged: a crash re-reads these rows, fingerprints absorb them
                since_commit = 0
            if len(event):
                run.rows(event)
                since_commit += len(event)
        elif isinstance(event, Checkpoint):
            state["adapter"] = event.position
            if event.snapshot and strategy in ("snapshot", "fingerprint"):
                def at_end(conn: Connection) -> None:
                    run.deletes_at_snapshot_end(conn)
                    # snapshot: the next file starts a new full set; fingerprint: this scan is done.
                    if strategy == "snapshot":
                        state["epoch"] = utcnow()
                    else:
                        state.pop("epoch", None)
                run.commit(at_end)
            elif long_chunks and since_commit < limit and run.commits:
                # The position rides with the next commit. The first checkpoint is committed still: it records
                # the pass as begun (complete = False), so a pass killed after it is reported as interrupted.
                continue
            else:
                run.commit()
            since_commit = 0
        elif isinstance(event, FileRefused):
            run.summary.files_refused += 1
            run.unread += 1  # its rows are unknown: no deletes may be inferred from this read
            run.problem(event)
        elif isinstance(event, RowProblem):
            run.summary.rows_read += 1
            run.summary.rejected += 1
            run.unread += 1
            run.problem(event)
        else:  # pragma: no cover - an adapter yielding something else is a bug in it
            raise TypeError(f"adapter {adapter.name} yielded {type(event).__name__}")

    def finish(conn: Connection) -> None:
        if full:
            run.deletes_at_snapshot_end(conn)  # a scan without a snapshot marker ends with the stream
        if keyset is not None:
            run.summary.deleted += run.writer.delete_source_keys(conn, keyset.gone)
            clear_refused_rows_gone(conn, keyset)
        state["complete"] = True
        if strategy != "snapshot":
            state.pop("epoch", None)
        if full:
            state.pop("adapter", None)

    reconcile = strategy == "cursor" and sc.reconcile_deletes
    keyset: KeySet | None = None  # the source's key set and the stored keys gone from it

    def clear_refused_rows_gone(conn: Connection, keys: KeySet) -> None:
        """A refused row never reached the outbox, so the key reconcile cannot see it go: its problems
        go when its key is no longer in the source's key set."""
        listed = current_problems.listed_keys(conn, sc.name)
        if listed:
            current_problems.clear(conn, sc.name, sorted(listed - keys.present(listed)))

    def load_keys(conn: Connection) -> None:
        nonlocal keyset
        keyset = reconcile_keys(adapter, conn, sc.name)

    run.commit(finish, load_keys if reconcile else None)


def _finish(engine: Engine, run_id: int, s: SyncSummary, status: str, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            sync_runs.update().where(sync_runs.c.id == run_id).values(
                finished_at=utcnow(), status=status, rows_read=s.rows_read, new=s.new, changed=s.changed,
                deleted=s.deleted, unchanged=s.unchanged, rejected=s.rejected,
                problems=orjson.dumps([p.as_dict() for p in s.problems[:100]], default=str).decode(),
                error=error, seconds=s.seconds,
            )
        )
