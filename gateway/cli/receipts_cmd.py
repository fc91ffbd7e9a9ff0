"""`gateway receipts verify`: check the department's stored receipts offline and hold the hub's log to them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx
from gateway.errors import FatalError


@cli.group("receipts")
def receipts() -> None:
    """The hub's signed receipts this gateway keeps (回执证据)."""


@receipts.command("verify")
@click.option("--compare-hub", is_flag=True, help="Also fetch the hub's signed log head and compare it with ours.")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the verified receipts to FILE for `gateway hub verify-log --heads FILE`.",
)
@click.option(
    "--upstream-key",
    "upstream_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The upper hub's public key: also check that the latest batches reached it (its signed receipts). "
    "Repeat it for each level further up, lowest first (county, then city).",
)
@click.option("--upstream-last", default=50, show_default=True, help="How many of the latest batches to check upward.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_ctx
@domain_errors
def verify_cmd(ctx: Context, compare_hub: bool, export_path: Path | None, upstream_keys: tuple[Path, ...],
               upstream_last: int, as_json: bool) -> None:
    """Check every stored receipt with the hub's public key alone; exit 1 on a bad one or a cut-back hub log."""
    from gateway.protocol.keys import read_public_key
    from gateway.push.evidence import compare_hub, exporting, verify_receipts
    from gateway.store import open_store

    config = ctx.config
    if config.hub.hub_key is None or not config.hub.hub_key.is_file():
        raise FatalError(f"hub.hub_key {config.hub.hub_key}: the hub's public key is needed to check receipts")
    key = read_public_key(config.hub.hub_key)
    engine = open_store(config.state_path)
    if export_path is None:
        verdict = verify_receipts(engine, key, config.department_code)
    else:
        with exporting(export_path) as f:
            verdict = verify_receipts(engine, key, config.department_code, export=f)
    comparison = None
    if compare_hub:
        comparison = compare_hub(config, verdict.latest)
    upward = None
    if upstream_keys:
        from gateway.push.upstream_check import check_upstream

        upward = check_upstream(config, engine, [read_public_key(k) for k in upstream_keys], upstream_last)
    if as_json:
        doc = verdict.as_dict()
        if upward is not None:
            doc["upstream"] = [v.as_dict() for v in upward]
        if comparison is not None:
            doc["hub"] = {
                "ok": comparison.ok,
                "log_seq": comparison.hub and comparison.hub.log_seq,
                "log_head": comparison.hub and comparison.hub.log_head,
                "hub_key_id": comparison.hub_key_id,
                "message": comparison.message,
            }
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        click.echo(
            f"批次回执 {verdict.batches_ok + verdict.batches_bad} 份：有效 {verdict.batches_ok}，无效 {verdict.batches_bad}；"
            f"记录回执 {verdict.records_ok + verdict.records_bad} 条：有效 {verdict.records_ok}，无效 {verdict.records_bad}"
        )
        latest = verdict.latest
        if latest is None:
            click.echo("持有的最新签名日志头 / latest signed head held: 无 / none")
        else:
            click.echo(
                f"持有的最新签名日志头 / latest signed head held: log_seq {latest.log_seq} log_head "
                f"{latest.log_head}（批次 / batch {latest.batch_id}）"
            )
        if verdict.bad:
            click.echo("无效回执 / bad receipts:")
            for b in verdict.bad:
                click.echo(f"  {b.record or '（批次回执 / batch receipt）'}\t批次 / batch {b.batch_id}\t{b.reason}")
        if export_path is not None:
            click.echo(f"已导出有效回执 / verified receipts exported: {export_path} ({verdict.batches_ok})")
        if comparison is not None:
            if comparison.hub is not None:
                click.echo(
                    f"中心日志头 / hub's head: log_seq {comparison.hub.log_seq} log_head {comparison.hub.log_head}"
                )
            click.echo(comparison.message)
        for v in upward or []:
            click.echo(
                f"第 {v.level} 级上级回执 / upper-hub receipts, level {v.level}: 批次 {v.batches}：已到达 {v.reached}"
                f"（记录 {v.records_reached} 条），随后续批次上报 {v.superseded}，待转发 {v.waiting}，"
                f"未配置上级 {v.not_forwarded}，无效 {len(v.bad)}"
            )
            for b, reason in v.bad:
                click.echo(f"  批次 / batch {b}\t{reason}")
    if not verdict.ok or (comparison is not None and not comparison.ok) or any(not v.ok for v in upward or []):
        sys.exit(1)
