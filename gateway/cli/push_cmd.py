"""`gateway push-pending`, `gateway deliveries`, `gateway dead-letters list|retry|resolve`."""

from __future__ import annotations

import getpass
import json

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx
from gateway.errors import FatalError, RetriableError


def _engine(ctx: Context):  # type: ignore[no-untyped-def]
    from gateway.store import open_store

    return open_store(ctx.config.state_path)


def _dump(obj: object) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@cli.command("push-pending")
@click.option("--retry-for", type=float, default=120.0, show_default=True,
              help="Keep retrying an unreachable hub this many seconds before giving up (0: one try).")
@click.option("--max-batches", type=int, default=None, help="Stop after this many receipted batches.")
@click.option("--backoff-cap", type=float, default=300.0, show_default=True, help="Longest pause between retries, seconds.")
@click.option("--wait-lock", type=float, default=30.0, show_default=True,
              help="Wait this long for another push (the service's worker) to finish.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_ctx
@domain_errors
def push_pending_cmd(ctx: Context, retry_for: float, max_batches: int | None, backoff_cap: float, wait_lock: float, as_json: bool) -> None:
    """Push the outbox to the hub once: resend batches awaiting a receipt, then pending records."""
    from gateway.push.backoff import Backoff
    from gateway.push.client import push_pending
    from gateway.push.status import delivery_status

    engine = _engine(ctx)
    summary = push_pending(
        ctx.config, engine, max_batches=max_batches, give_up_after=retry_for,
        backoff=Backoff(base=min(1.0, backoff_cap), cap=backoff_cap), lock_wait=wait_lock,
    )
    left = delivery_status(engine).counts
    if as_json:
        _dump({**summary.as_dict(), "pending": left["pending"], "sent": left["sent"]})
    else:
        click.echo(
            f"批次 {summary.batches}，已送达 {summary.accepted + summary.duplicate}（接收 {summary.accepted}，"
            f"重复 {summary.duplicate}），过期版本（未采用） {summary.stale}，退回 {summary.rejected}；"
            f"待推送 {left['pending']}，待回执 {left['sent']}"
        )
    if summary.refused:
        raise FatalError(f"中心拒收批次，推送暂停 / hub refused a batch, pushing paused: {summary.refused}")
    if summary.gave_up:
        raise RetriableError(f"中心不可达，稍后重试 / hub unreachable, try again later: {summary.last_error}")


@cli.command("deliveries")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@domain_errors
def deliveries_cmd(ctx: Context, as_json: bool) -> None:
    """Delivery status: outbox by state, batches awaiting a receipt, open dead letters."""
    from gateway.push.status import delivery_status

    st = delivery_status(_engine(ctx))
    if as_json:
        _dump(st.as_dict())
        return
    c = st.counts
    click.echo(f"待推送 pending   {c['pending']}")
    click.echo(f"待回执 sent      {c['sent']}")
    click.echo(f"已送达 delivered {c['delivered']}")
    click.echo(f"过期版本（未采用）stale {c['stale']}（中心已有更新的版本 / the hub holds a newer version）")
    click.echo(f"退回   dead      {c['dead']}（未处理死信 {st.open_dead_letters}）")
    click.echo(f"最早待推送 oldest pending: {st.oldest_pending_at or '-'}")
    click.echo(f"最近回执 last receipt:     {st.last_receipt_at or '-'}")
    for b in st.inflight:
        flag = "  ← 中心拒收，需人工处理 / REFUSED, a person must act" if b.refused else ""
        click.echo(
            f"批次 {b.batch_id} {b.source} {b.records} 条 attempts={b.attempts} "
            f"last={b.last_status or '-'} next={b.next_attempt_at or '-'}{flag}"
        )
        if b.last_error:
            click.echo(f"    {b.last_error}")


@cli.group("dead-letters")
def dead_letters_cmd() -> None:
    """Records the hub rejected: list, retry (re-send the same record), resolve (mark handled)."""


@dead_letters_cmd.command("list")
@click.option("--all", "include_handled", is_flag=True, help="Include retried and resolved ones.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@domain_errors
def dead_letters_list(ctx: Context, include_handled: bool, as_json: bool) -> None:
    """List dead letters with the hub's reasons."""
    from dataclasses import asdict

    from gateway.push.deadletters import list_dead_letters

    items = list_dead_letters(_engine(ctx), include_handled=include_handled)
    if as_json:
        _dump([asdict(d) for d in items])
        return
    if not items:
        click.echo("没有死信 / no dead letters")
    for d in items:
        state = f" [{d.resolution} {d.resolved_by} {d.resolved_at}]" if d.resolved_at else ""
        click.echo(f"#{d.id} {d.source} {d.record_type} {d.record_key} seq={d.seq} {d.created_at}{state}")
        for r in d.reasons:
            if isinstance(r, dict):
                where = r.get("label") or r.get("field") or ""
                click.echo(f"    {where} {r.get('value')!r}: {r.get('message')} [{r.get('rule')}]")
            else:
                click.echo(f"    {r}")


def _actor(by: str | None) -> str:
    return by or getpass.getuser()


@dead_letters_cmd.command("retry")
@click.argument("dead_letter_id", type=int)
@click.option("--by", help="Who is acting (default: the login name).")
@click.option("--note", help="Why.")
@pass_ctx
@domain_errors
def dead_letters_retry(ctx: Context, dead_letter_id: int, by: str | None, note: str | None) -> None:
    """Re-queue the rejected record as it was, for another attempt."""
    from gateway.push.deadletters import retry_dead_letter

    oid = retry_dead_letter(_engine(ctx), dead_letter_id, _actor(by), note)
    click.echo(f"死信 {dead_letter_id} 已重新排队（outbox {oid}） / re-queued")


@dead_letters_cmd.command("resolve")
@click.argument("dead_letter_id", type=int)
@click.option("--by", help="Who is acting (default: the login name).")
@click.option("--note", help="How it was handled.")
@pass_ctx
@domain_errors
def dead_letters_resolve(ctx: Context, dead_letter_id: int, by: str | None, note: str | None) -> None:
    """Mark the dead letter handled (the record is not sent again)."""
    from gateway.push.deadletters import resolve_dead_letter

    resolve_dead_letter(_engine(ctx), dead_letter_id, _actor(by), note)
    click.echo(f"死信 {dead_letter_id} 已标记处理 / resolved")

