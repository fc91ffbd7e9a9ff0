"""`gateway hub ...`: the hub's own command group (gateway.hub.cli, also installed as `gateway-hub`)."""

from gateway.cli.main import cli
from gateway.hub.cli import hub

cli.add_command(hub)
