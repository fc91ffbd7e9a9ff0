"""docs/service.md names every command, option, endpoint and answer status of the service."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.api.local import STATUS_CODES, bp
from gateway.cli import cli

DOC = (Path(__file__).resolve().parents[1] / "docs" / "service.md").read_text(encoding="utf-8")


def _commands() -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name in ("run", "push", "demo", "pg-notify", "freshness"):
        cmd = cli.commands[name]
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def test_every_command_and_option_is_documented() -> None:
    for name, cmd in _commands():
        assert name in DOC, f"`gateway {name}` is not in docs/service.md"
        for p in cmd.params:
            if isinstance(p, click.Option):
                assert any(o in DOC for o in p.opts), f"`gateway {name} {p.opts[0]}` is not in docs/service.md"


def test_every_endpoint_and_status_is_documented() -> None:
    from flask import Flask

    app = Flask(__name__)
    app.register_blueprint(bp)
    rules = [r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith(bp.name)]
    assert rules
    for rule in rules:
        assert rule in DOC, f"endpoint {rule} is not in docs/service.md"
    for status, code in STATUS_CODES.items():
        assert f"| `{status}` | {code} |" in DOC, f"status {status} ({code}) is not in docs/service.md"
