"""docs/web-ui.md names every page of both UIs and every user command and option."""

from __future__ import annotations

import re
from pathlib import Path

import click

from gateway.cli import cli

DOC = (Path(__file__).resolve().parents[1] / "docs" / "web-ui.md").read_text(encoding="utf-8")


def _documented(rule: str) -> bool:
    """The whole path is in the doc, converters dropped (<int:dl_id> -> <dl_id>)."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)
    return re.search(re.escape(path) + r"(?=[`\s?,])", DOC) is not None


def test_every_gateway_page_is_documented(gw_app) -> None:  # type: ignore[no-untyped-def]
    for r in gw_app.url_map.iter_rules():
        if r.endpoint.endswith("static"):
            continue
        assert _documented(r.rule), f"{r.rule} ({r.endpoint}) is not in docs/web-ui.md"


def test_every_hub_ui_page_is_documented(live_hub) -> None:  # type: ignore[no-untyped-def]
    from gateway.hub.app import create_app
    from gateway.hub.config import load_hub_config

    app = create_app(load_hub_config(live_hub.config_path))
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/ui") and not r.endpoint.endswith("static")]
    assert len(rules) > 10
    for r in rules:
        if r.endpoint == "hub_ui.not_found":
            continue
        assert _documented(r.rule), f"{r.rule} ({r.endpoint}) is not in docs/web-ui.md"


def test_every_user_command_and_option_is_documented() -> None:
    for group in (cli, cli.commands["hub"]):
        user = group.commands["user"]  # type: ignore[attr-defined]
        assert isinstance(user, click.Group)
        for name, cmd in user.commands.items():
            assert f"user {name}" in DOC, f"`user {name}` is not in docs/web-ui.md"
            for p in cmd.params:
                if isinstance(p, click.Option):
                    assert any(o in DOC for o in p.opts), f"`user {name} {p.opts[0]}` is not in docs/web-ui.md"
