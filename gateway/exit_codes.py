"""Domain errors to a message and an exit code, shared by the `gateway` and `gateway-hub` commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from gateway.errors import FatalError, GatewayError


def domain_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a message on stderr and an exit code (2 config/fatal, 1 other)."""

    @wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        try:
            return fn(*a, **kw)
        except FatalError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except GatewayError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)

    return wrapper
