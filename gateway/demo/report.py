"""What the demo delivered, per source, and every rejected row with its reason — from the gateway's store."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from gateway.store.tables import dead_letters, outbox, sync_runs

GATEWAY = "前置机校验"
HUB = "中心拒收"


@dataclass
class SourceLine:
    source: str
    record_type: str
    read: int = 0  # rows read this run
    enqueued: int = 0  # new, changed or deleted records this run
    delivered: int = 0  # records with a verified receipt (all runs)
    waiting: int = 0  # enqueued but not yet receipted
    rejected: int = 0  # gateway validation (this run's sync) + hub rejections


@dataclass
class Rejection:
    source: str
    where: str
    field: str | None
    value: Any
    reason: str
    by: str  # 前置机校验 | 中心拒收


@dataclass
class DemoReport:
    lines: list[SourceLine] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    failed_sources: dict[str, str] = field(default_factory=dict)  # source -> error of its sync

    @property
    def waiting(self) -> int:
        return sum(line.waiting for line in self.lines)

    @property
    def delivered(self) -> int:
        return sum(line.delivered for line in self.lines)

    @property
    def gateway_rejected(self) -> int:
        return sum(1 for r in self.rejections if r.by == GATEWAY)

    @property
    def hub_rejected(self) -> int:
        return sum(1 for r in self.rejections if r.by == HUB)

    @property
    def complete(self) -> bool:
        """Every record that passed the gateway's checks delivered with a verified receipt: none waiting, none refused."""
        return not self.failed_sources and self.waiting == 0 and self.hub_rejected == 0 and self.delivered > 0


def _get(obj: Any, name: str, default: Any = 0) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _problem_fields(p: Any) -> tuple[str, str | None, Any, str]:
    d = p.as_dict() if hasattr(p, "as_dict") else (p if isinstance(p, dict) else {"message": str(p)})
    return str(d.get("locator") or ""), d.get("field"), d.get("value"), str(d.get("message") or d.get("rule") or "")


def _last_problems(engine: Engine, source: str) -> list[Any]:
    """The problems of the source's latest run that had any (a re-run may have read nothing new)."""
    with engine.connect() as c:
        text = c.execute(
            select(sync_runs.c.problems).where(sync_runs.c.source == source, sync_runs.c.problems.is_not(None),
                                               sync_runs.c.rejected > 0)
            .order_by(sync_runs.c.id.desc()).limit(1)
        ).scalar()
    if not text:
        return []
    try:
        got = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return got if isinstance(got, list) else []


def build_report(engine: Engine, sources: list[tuple[str, str]], summaries: dict[str, Any]) -> DemoReport:
    """`sources` = [(name, record_type)] in display order; `summaries` = this run's SyncSummary per source."""
    rep = DemoReport()
    with engine.connect() as c:
        delivered = dict(
            c.execute(
                # `delivered` in the outbox: a verified receipt said accepted, duplicate or stale.
                select(outbox.c.source, func.count()).where(outbox.c.state == "delivered").group_by(outbox.c.source)
            ).all()
        )
        waiting = dict(
            c.execute(
                select(outbox.c.source, func.count()).where(outbox.c.state.in_(("pending", "sent"))).group_by(outbox.c.source)
            ).all()
        )
        dead = c.execute(
            select(outbox.c.source, dead_letters.c.record_key, dead_letters.c.reasons)
            .select_from(dead_letters.join(outbox, outbox.c.id == dead_letters.c.outbox_id))
            .where(dead_letters.c.resolved_at.is_(None))
            .order_by(dead_letters.c.id)
        ).all()
    for name, rtype in sources:
        s = summaries.get(name)
        line = SourceLine(name, rtype, delivered=int(delivered.get(name, 0)), waiting=int(waiting.get(name, 0)))
        problems: list[Any] = []
        if s is not None:
            line.read = int(_get(s, "rows_read"))
            line.enqueued = int(_get(s, "new")) + int(_get(s, "changed")) + int(_get(s, "deleted"))
            problems = list(_get(s, "problems", []) or [])
            if not problems and int(_get(s, "rejected")):
                problems = _last_problems(engine, name)
        if s is None or (not problems and line.read == 0):
            problems = _last_problems(engine, name)
        for p in problems:
            where, fld, value, reason = _problem_fields(p)
            rep.rejections.append(Rejection(name, where, fld, value, reason, GATEWAY))
        line.rejected = len(problems)
        rep.lines.append(line)
    by_source = {line.source: line for line in rep.lines}
    for source, key, reasons_text in dead:
        reasons = orjson.loads(reasons_text) if reasons_text else []
        for r in reasons or [{}]:
            r = r if isinstance(r, dict) else {"message": str(r)}
            rep.rejections.append(Rejection(source, key, r.get("field"), r.get("value"), str(r.get("message") or ""), HUB))
        if source in by_source:
            by_source[source].rejected += 1
    return rep


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, w: int) -> str:
    return s + " " * max(0, w - _width(s))


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "  ".join(_pad(h, w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def format_report(rep: DemoReport) -> str:
    rows = [
        [line.source, line.record_type, str(line.read), str(line.enqueued), str(line.delivered), str(line.waiting), str(line.rejected)]
        for line in rep.lines
    ]
    rows.append(["合计", "", str(sum(x.read for x in rep.lines)), str(sum(x.enqueued for x in rep.lines)),
                 str(rep.delivered), str(rep.waiting), str(sum(x.rejected for x in rep.lines))])
    text = format_table(["数据源", "记录类型", "本次读取", "本次入队", "已签收(回执已验证)", "待送达", "拒收"], rows)
    if rep.rejections:
        text += "\n\n被拒收的行及原因：\n"
        for r in rep.rejections:
            fld = f" 字段 {r.field}" if r.field else ""
            val = f" 值 {r.value!r}" if r.value not in (None, "") else ""
            text += f"  [{r.by}] {r.source} {r.where}{fld}{val}：{r.reason}\n"
    return text.rstrip("\n")
