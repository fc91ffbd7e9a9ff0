"""The `gateway` command group; each area adds its commands from its own module."""

from __future__ import annotations

from pathlib import Path

import click

from gateway import __version__
from gateway.exit_codes import domain_errors  # noqa: F401 (re-exported: the commands import it from here)


class Context:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config = None

    @property
    def config(self):  # type: ignore[no-untyped-def]
        from gateway.config import load_gateway_config

        if self.config_path is None:
            raise click.UsageError("this command needs --config FILE (or $GATEWAY_CONFIG)")
        if self._config is None:
            self._config = load_gateway_config(self.config_path)
        return self._config


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config", "-c", "config_path", type=click.Path(path_type=Path), envvar="GATEWAY_CONFIG",
    help="Gateway config file (TOML).",
)
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.version_option(__version__, prog_name="gateway")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, log_level: str) -> None:
    """应急资源数据交换前置机 — emergency-resource data-exchange gateway and township hub."""
    from gateway.logs import setup_logging

    setup_logging(log_level)
    ctx.obj = Context(config_path)


pass_ctx = click.make_pass_decorator(Context)
