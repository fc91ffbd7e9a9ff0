"""`gateway` command line. Importing the command modules registers their commands."""

from gateway.cli import hub_cmd  # noqa: F401
from gateway.cli import init_cmd  # noqa: F401
from gateway.cli import push_cmd  # noqa: F401
from gateway.cli import spreadsheet_cmd  # noqa: F401
from gateway.cli import standard_cmd  # noqa: F401
from gateway.cli import users_cmd  # noqa: F401
from gateway.cli.main import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli()
