"""docs/push.md names every push command and option; a new one without docs fails here."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli import cli

DOC = (Path(__file__).resolve().parent.parent / "docs" / "push.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in ("push-pending", "deliveries", "dead-letters", "receipts"):
        cmd = cli.commands[name]
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def test_every_push_command_and_option_is_documented() -> None:
    missing = []
    for name, cmd in _commands():
        if f"gateway --config F {name}" not in DOC:
            missing.append(name)
        for p in cmd.params:
            if isinstance(p, click.Option):
                flag = max(p.opts, key=len)
                if flag != "--help" and f"`{flag}" not in DOC:
                    missing.append(f"{name} {flag}")
    assert not missing, f"not in docs/push.md: {missing}"
