"""The one interface every source adapter implements.

An adapter is given its settings and its saved position and yields, in bounded
memory, a stream of events:

- ``SourceRow``: one raw row as a dict, with a stable source key and a locator
  saying where it came from (for error messages);
- ``RowProblem`` (from gateway.errors): a row that could not be read; the
  stream continues with the next one;
- ``Checkpoint``: everything yielded so far may be committed together with this
  position; after a crash the adapter is restarted from the last committed one.
  The sync pipeline commits *before* it asks for the next event, so when
  fetch() resumes after a ``yield Checkpoint(...)`` that checkpoint is durable
  (a file adapter may then move the file to its archive).

Adapters know nothing of mapping, delivery or the hub. Adding a source type is
adding a module with an ``Adapter`` subclass and registering it in the
``gateway.adapters`` entry-point group (setup.cfg), as the built-in ones are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, final

from gateway.errors import RowProblem

if TYPE_CHECKING:
    import pyarrow as pa

Position = Any  # JSON-serialisable; owned by the adapter, stored by the sync pipeline


@dataclass(slots=True)
class SourceRow:
    key: str  # stable source key (key columns joined by '|')
    data: dict[str, Any]  # column/path -> raw value
    locator: str  # "stock.csv:12", "table dept_stock key=7", "export.xml:/items/item[3]"
    version: Any = None  # cursor value or file identity, for dedupe of re-read rows


@dataclass(slots=True)
class Checkpoint:
    position: Position
    # True when the rows since the previous snapshot-marking checkpoint were the
    # *complete* set of the source's current keys (a snapshot file, a full scan):
    # keys not seen are deletes.
    snapshot: bool = False
    # Keys seen in the snapshot; set by adapters that want the pipeline to use
    # them instead of tracking keys itself (None = pipeline tracks).
    note: str = ""


Event = SourceRow | RowProblem | Checkpoint


@dataclass(frozen=True)
class Setting:
    """One declared adapter setting (name, type, default, help)."""

    name: str
    type: type | tuple[type, ...]
    required: bool = False
    default: Any = None
    help: str = ""
    secret: bool = False  # may be given as {env = "..."} or {credential = "..."}
    choices: tuple[Any, ...] | None = None
    path: bool = False  # a local file/folder path: relative ones are resolved against the config file's folder


class Adapter(ABC):
    """Base class of all source adapters."""

    name: ClassVar[str]
    settings_spec: ClassVar[tuple[Setting, ...]] = ()
    # Whether fetch() can give a full set of keys cheaply (for delete detection).
    supports_keys: ClassVar[bool] = False
    # Whether the adapter acts on its source once a checkpoint is committed (file adapters archive the
    # file): then every checkpoint is committed before it resumes. False: a checkpoint only marks where a
    # later read may resume, which a whole-source pass never does (it restarts from the beginning).
    acts_after_checkpoint: ClassVar[bool] = True

    def __init__(self, source: str, settings: Mapping[str, Any]) -> None:
        self.source = source
        self.settings = dict(settings)

    @abstractmethod
    def fetch(self, position: Position | None) -> Iterator[Event]:
        """Yield rows changed since `position` (all rows when None), with checkpoints."""

    def fetch_batches(self, position: Position | None, size: int = 2000) -> Iterator[Any]:
        """fetch()'s stream with runs of rows grouped into RowBatches (gateway.adapters.batches): the bulk
        path's read. Override with a columnar reader that keeps that module's contract."""
        from gateway.adapters.batches import batched  # batches imports this module

        return batched(self.fetch(position), size)

    def fetch_one(self, key: str) -> SourceRow | None:
        """Re-read one row by its source key (per-record push); None when it no longer exists."""
        raise NotImplementedError(f"{self.name} sources cannot re-read a single row")

    def keys(self) -> Iterator[str]:
        """All current source keys, reading only key columns (key-set reconciliation)."""
        raise NotImplementedError(f"{self.name} sources cannot list keys")

    def key_array(self) -> pa.Array | pa.ChunkedArray | None:
        """All current source keys, as keys() gives them, as Arrow strings (one array or chunks) when the
        source can read its key columns columnar; None (the default) makes reconciliation gather keys() instead."""
        return None

    def columns(self) -> list[str] | None:
        """Column names/paths, reflected or sampled; None when unknown."""
        return None

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release connections; called once the adapter is no longer used."""

    @final
    def __enter__(self) -> Adapter:
        return self

    @final
    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class AdapterInfo:
    name: str
    cls: type[Adapter]
    settings: tuple[Setting, ...] = field(default_factory=tuple)
