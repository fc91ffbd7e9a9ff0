"""The sync pipeline: extract -> map -> validate -> detect change -> enqueue.

- ``sync_source(config, source_name, engine, *, operator="system", progress=None, allow_mass_delete=False) -> SyncSummary``
  (raises ``MassDeleteHeld`` when a whole-source read would delete more than the source's ``max_delete_fraction``)
- ``sync_one(config, source_name, source_key, engine, *, operator="system") -> OneResult``
- ``enqueue_records(engine, source, record_type, records, operator) -> EnqueueSummary``
"""

from gateway.sync.local import EnqueueSummary, enqueue_records
from gateway.sync.one import OneResult, sync_one
from gateway.sync.pipeline import (
    MassDeleteHeld,
    SyncSummary,
    compile_for,
    open_adapter,
    sync_source,
)

__all__ = [
    "EnqueueSummary",
    "MassDeleteHeld",
    "OneResult",
    "SyncSummary",
    "compile_for",
    "enqueue_records",
    "open_adapter",
    "sync_one",
    "sync_source",
]
