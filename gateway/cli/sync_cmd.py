"""`gateway sync SOURCE`: one extract cycle, pushing the outbox alongside (unless --no-push).

The push worker is woken after each chunk the sync commits, so records travel
to the hub while the source is still being read; once the sync is over it
pushes what is left and the command reports both.
"""

from __future__ import annotations

import json
import sys

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


def _engine(ctx: Context):  # type: ignore[no-untyped-def]
    from gateway.store import open_store

    return open_store(ctx.config.state_path)


def _counter() -> object:
    """A row counter on stderr, only when a person is watching."""
    if not sys.stderr.isatty():
        return None

    def show(rows: int) -> None:
        click.echo(f"\r已读取 {rows} 行…", err=True, nl=False)

    return show


@cli.command("sync")
@click.argument("source")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--show", "show", type=int, default=20, show_default=True, help="How many rejected rows to list.")
@click.option("--push/--no-push", default=True, show_default=True, help="Push the outbox to the hub afterwards.")
@click.option("--push-retry-for", type=float, default=30.0, show_default=True, help="Seconds to keep retrying the hub.")
@click.option("--operator", default="cli", show_default=True, help="Recorded as who enqueued the records.")
@click.option("--allow-mass-delete", is_flag=True,
              help="Enqueue the deletes this read finds even when they exceed the source's max_delete_fraction.")
@pass_ctx
@domain_errors
def sync_cmd(ctx: Context, source: str, as_json: bool, show: int, push: bool, push_retry_for: float, operator: str,
             allow_mass_delete: bool) -> None:
    """Read SOURCE, map and validate its rows, and enqueue what changed."""
    from gateway.sync import MassDeleteHeld, sync_source

    config = ctx.config
    try:
        config.source(source)
    except KeyError as e:
        raise click.UsageError(str(e.args[0])) from None
    engine = _engine(ctx)
    counter = _counter()
    worker = _push_worker(config, engine, push_retry_for) if push else None

    def progress(rows: int) -> None:
        if counter is not None:
            counter(rows)  # type: ignore[operator]
        if worker is not None:
            worker.wake()  # push the chunk just committed

    try:
        summary = sync_source(config, source, engine, operator=operator, progress=progress, allow_mass_delete=allow_mass_delete)
    except MassDeleteHeld:
        if worker is not None:
            click.echo(_push_text(_finish_push(worker)), err=True)  # every other change of this run was committed: deliver it
        raise
    except BaseException:
        if worker is not None:
            worker.stop()  # what it sent stays `sent` or delivered; the rest is queued for the next push
        raise
    if counter is not None:
        click.echo("", err=True)
    pushed = _finish_push(worker) if worker is not None else {"status": "skipped", "message": "未推送（--no-push）"}
    if as_json:
        # The push summary is nested as an object, not a JSON string inside the JSON.
        click.echo(json.dumps({**summary.as_dict(), "push": pushed}, ensure_ascii=False, indent=2, default=str))
        return
    s = summary
    click.echo(f"数据源 {s.source}（映射版本 {s.mapping_version}，用时 {s.seconds:.1f} 秒）")
    click.echo(f"读取行数：{s.rows_read}")
    click.echo(f"记录：新增 {s.new}，变更 {s.changed}，删除 {s.deleted}，未变 {s.unchanged}")
    click.echo(f"拒收行数：{s.rejected}")
    if s.files_refused:
        click.echo(f"拒绝文件：{s.files_refused} 个（整个文件未读取，见下列问题）")
    for p in s.problems[:show]:
        click.echo(f"  {p.locator} 字段 {p.field or '-'} 值 {p.value!r}：{p.message} [{p.rule}]")
    if s.rejected > min(show, len(s.problems)):
        click.echo(f"  …另有 {s.rejected - min(show, len(s.problems))} 行，见 --json 或同步记录")
    for note in s.notes:
        click.echo(f"注意：{note}")
    click.echo(f"推送：{_push_text(pushed)}")


def _push_worker(config, engine, retry_for: float):  # type: ignore[no-untyped-def]
    from gateway.push.worker import PushWorker

    return PushWorker(config, engine, idle_poll=3600, give_up_after=retry_for).start()


def _finish_push(worker) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The push's totals with a status: "pushed", or "queued" when the hub could not be reached."""
    total = worker.finish()
    if worker.last_error and not total.delivered and not total.rejected:
        return {"status": "queued", "message": f"记录已入队，暂未送达中心（{worker.last_error}），将由推送任务重试",
                "error": str(worker.last_error), **total.as_dict()}
    return {"status": "pushed", **total.as_dict()}


def _push_text(pushed: dict[str, object]) -> str:
    if "message" in pushed:
        return str(pushed["message"])
    return json.dumps({k: v for k, v in pushed.items() if k != "status"}, ensure_ascii=False, default=str)
