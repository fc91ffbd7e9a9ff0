"""`gateway-hub forward` (drain the forward outbox once) and `gateway-hub relay add|list` (a lower hub's key)."""

from __future__ import annotations

import sys
from typing import Any

import click
import orjson

from gateway.errors import FatalError
from gateway.exit_codes import domain_errors


def forward_commands(group: click.Group, pass_hub: Any) -> None:
    @group.command("forward")
    @click.option("--retry-for", default=60.0, show_default=True, metavar="S",
                  help="Keep retrying an unreachable upper hub this many seconds (0: one try).")
    @click.option("--retry-refused", is_flag=True, help="First put batches the upper hub refused back in the queue.")
    @click.option("--backfill", is_flag=True,
                  help="First queue the batches stored before [upstream] was set (their records that are still current).")
    @click.option("--department", "departments", multiple=True, help="With --backfill: only this department (repeatable).")
    @click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
    @pass_hub
    @domain_errors
    def forward(h: Any, retry_for: float, retry_refused: bool, backfill: bool, departments: tuple[str, ...],
                as_json: bool) -> None:
        """Forward what this hub accepted to [upstream], once. Exit 0 when all is delivered, 1 when the upper hub
        stayed unreachable (or another forwarder holds the lock), 2 when it refused a batch."""
        from gateway.hub.forward import outbox
        from gateway.hub.forward.attachments import FileSender
        from gateway.hub.forward.worker import Forwarder

        if h.config.upstream is None:
            raise FatalError(f"{h.path}: no [upstream] section: this hub forwards to no upper hub")
        if retry_refused:
            outbox.retry_refused(h.engine)
        backfilled = outbox.backfill(h.engine, departments) if backfill else 0
        if backfill and not as_json:
            click.echo(f"补发排队 {backfilled} 批 / queued {backfilled} batches stored before forwarding was set up")
        files = FileSender(h.config.attachments_dir, h.config.at_rest)
        result = Forwarder(h.engine, h.config.upstream, h.config.key_id, h.config.at_rest.open,
                           files=files).drain(retry_for=retry_for)
        left = outbox.counts(h.engine)
        doc = {"backfilled_batches": backfilled, "delivered_batches": result.delivered, "records": result.records, "failed_attempts": result.retried,
               "refused_batches": result.refused, "busy": result.busy, "last_error": result.last_error, **left}
        if as_json:
            click.echo(orjson.dumps(doc).decode())
        else:
            if result.busy:
                click.echo("另一个转发进程正在运行 / another forwarder holds the lock")
            click.echo(f"已转发 {result.delivered} 批 {result.records} 条 / forwarded {result.delivered} batches, "
                       f"{result.records} records; 待发 / awaiting receipt: {left.get('batches_sent', 0)}, "
                       f"排队 / queued: {left.get('queued_queued', 0)}, 被拒 / refused: {left.get('batches_refused', 0)}")
            if result.last_error:
                click.echo(f"最近错误 / last error: {result.last_error}")
        if left.get("batches_refused"):
            sys.exit(2)
        if result.busy or left.get("batches_sent") or left.get("queued_queued"):
            sys.exit(1)

    @group.group("relay")
    def relay() -> None:
        """Lower hubs allowed to forward to this one (each for the departments of its area)."""

    @relay.command("add")
    @click.argument("key_id")
    @click.argument("name")
    @click.argument("public_key")
    @click.option("--departments", required=True, help="The relay's area: department codes, comma-separated.")
    @pass_hub
    @domain_errors
    def relay_add(h: Any, key_id: str, name: str, public_key: str, departments: str) -> None:
        """Register (or change the area of) the lower hub key KEY_ID; PUBLIC_KEY is its line or a .pub file."""
        from pathlib import Path

        from gateway.hub import registry

        p = Path(public_key)
        text = p.read_text(encoding="ascii").strip() if p.is_file() else public_key
        area = [c.strip() for c in departments.split(",") if c.strip()]
        with h.engine.begin() as conn:
            registry.add_relay(conn, key_id, name, text, area)
        click.echo(f"relay {key_id} ({name}) may forward for: {', '.join(area)}")

    @relay.command("list")
    @pass_hub
    @domain_errors
    def relay_list(h: Any) -> None:
        """Relays with their area and state (revoke one with `department key-revoke KEY_ID`)."""
        from gateway.hub import registry

        with h.engine.connect() as conn:
            for r in registry.list_relays(conn):
                click.echo(f"relay {r.key_id}\t{'REVOKED' if r.revoked else 'active'}\t{', '.join(r.area or ())}")
