"""`gateway` command line. Importing the command modules registers their commands."""

from gateway.cli import (
    at_rest_cmd,  # noqa: F401
    demo_cmd,  # noqa: F401
    files_cmd,  # noqa: F401
    freshness_cmd,  # noqa: F401
    hub_cmd,  # noqa: F401
    init_cmd,  # noqa: F401
    mapping_cmd,  # noqa: F401
    pgnotify_cmd,  # noqa: F401
    push_cmd,  # noqa: F401
    receipts_cmd,  # noqa: F401
    run_cmd,  # noqa: F401
    spreadsheet_cmd,  # noqa: F401
    standard_cmd,  # noqa: F401
    sync_cmd,  # noqa: F401
    users_cmd,  # noqa: F401
)
from gateway.cli.main import cli
from gateway.process_memory import bound_memory

__all__ = ["cli", "main"]


def main() -> None:
    bound_memory()  # before the service, the hub or a sync starts its threads
    cli()
