"""Adapters and transforms are found through entry-point groups.

Built-in ones are registered in setup.cfg exactly as an outside package would
register its own, so the plug-in seam is used by our own code every day.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

ADAPTER_GROUP = "gateway.adapters"
TRANSFORM_GROUP = "gateway.transforms"


@cache
def _group(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str = ADAPTER_GROUP) -> list[str]:
    return sorted(_group(group))


def load(name: str, group: str = ADAPTER_GROUP) -> Any:
    eps = _group(group)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise KeyError(f"unknown {group.split('.')[-1][:-1]} type {name!r} (known: {known})")
    return eps[name].load()


def adapter_class(name: str) -> Any:
    return load(name, ADAPTER_GROUP)
