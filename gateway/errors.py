"""Domain errors, organised by how a caller recovers from them.

- FatalError: stop and tell the admin (bad config, bad mapping, refused host key).
- RetriableError: try again later (network, 5xx, 429, locked database).
- SkippableError: this one row/record is bad; report it and continue with the rest.

Errors are translated only at the edges: the CLI turns them into a message and
exit code, the web error handlers into a page or JSON.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error this package raises on purpose."""


class FatalError(GatewayError):
    pass


@dataclass(frozen=True)
class ConfigProblem:
    path: str  # e.g. "sources[2].mapping"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(FatalError):
    """All problems of a config file at once, each with its path."""

    def __init__(self, problems: list[ConfigProblem], file: str | None = None) -> None:
        self.problems = list(problems)
        self.file = file
        head = f"{file}: " if file else ""
        super().__init__(head + f"{len(self.problems)} problem(s):\n" + "\n".join(f"  {p}" for p in self.problems))


class MappingError(FatalError):
    """A mapping that cannot be compiled; `problems` lists every mistake found."""

    def __init__(self, problems: list[str], file: str | None = None) -> None:
        self.problems = list(problems)
        self.file = file
        head = f"{file}: " if file else ""
        super().__init__(head + f"{len(self.problems)} mapping problem(s):\n" + "\n".join(f"  {p}" for p in self.problems))


class SourceError(FatalError):
    """A source cannot be read at all (refused host key, missing table, bad credentials)."""


class RetriableError(GatewayError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SkippableError(GatewayError):
    pass


@dataclass
class RowProblem:
    """A bad row or record: where it is, what is wrong, by which rule.

    `locator` names the place in the source: "file.csv:line 12", "table t row key=7",
    "export.xml:/root/item[3]". `message` is Chinese for users.
    """

    source: str
    locator: str
    field: str | None
    value: object
    rule: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "locator": self.locator,
            "field": self.field,
            "value": self.value,
            "rule": self.rule,
            "message": self.message,
        }

    def __str__(self) -> str:
        where = f"{self.source} {self.locator}".strip()
        fld = f" 字段 {self.field}" if self.field else ""
        return f"{where}{fld} 值 {self.value!r}: {self.message} [{self.rule}]"


@dataclass
class FileRefused(RowProblem):
    """A whole file refused (bad name, unreadable, too large, unknown format): not a row.

    The sync summary counts these under files_refused, so rows_read stays a count of rows.
    """
