"""What the SQLAlchemy and the raw-ODBC adapters share: declared-type checks,
cursor positions as JSON, the read-only query check and the row/checkpoint loop.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.adapters.base import Checkpoint, Event, Setting, SourceRow
from gateway.errors import ConfigError, ConfigProblem, RowProblem, SkippableError

# Declared column kinds a value is checked against (reflected, or the `column_types` setting).
KINDS = ("int", "decimal", "date", "datetime", "str")

COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("table", str, help="table or view to read (checked against the database's own catalog)"),
    Setting("schema", str, help="schema of the table, when not the default"),
    Setting("query", str, help="instead of table: one read-only SELECT/WITH statement"),
    Setting("key_columns", list, required=True, help="columns that identify a row"),
    Setting("cursor_column", str, help="monotonic column (updated_at, rowversion) for the cursor strategy"),
    Setting("lag_seconds", int, default=0, help="re-read this many seconds behind the saved cursor (late commits)"),
    Setting("chunk_size", int, default=2000, help="rows per fetch and per checkpoint (one state-store commit)"),
    Setting("column_types", dict, default=None, help="declared types to check, e.g. {qty = \"int\", day = \"date\"}"),
)


class ValueRejected(ValueError):
    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def _to_int(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            raise ValueRejected("type:int", "不是整数") from None
    if isinstance(v, float) and not v.is_integer():
        raise ValueRejected("type:int", "不是整数")
    return v


def _to_decimal(v: Any) -> Any:
    if isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            raise ValueRejected("type:decimal", "不是数字") from None
        if not d.is_finite():
            raise ValueRejected("type:decimal", "不是数字")
        return d
    return v


def _to_date(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, str | bytes):
        s = v.decode() if isinstance(v, bytes) else v
        try:
            return dt.date.fromisoformat(s.strip()[:10])
        except ValueError:
            raise ValueRejected("type:date", "不是有效日期") from None
    return v


def _to_datetime(v: Any) -> Any:
    if isinstance(v, str | bytes):
        s = v.decode() if isinstance(v, bytes) else v
        try:
            return dt.datetime.fromisoformat(s.strip())
        except ValueError:
            raise ValueRejected("type:datetime", "不是有效的日期时间") from None
    return v


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "decimal": _to_decimal,
    "date": _to_date,
    "datetime": _to_datetime,
}


def check_column_types(declared: Any, columns: Sequence[str], where: str) -> dict[str, str]:
    if not declared:
        return {}
    problems = []
    out: dict[str, str] = {}
    for col, kind in dict(declared).items():
        if col not in columns:
            problems.append(ConfigProblem(f"{where}.column_types.{col}", f"no such column (have: {', '.join(columns)})"))
        elif kind not in KINDS:
            problems.append(ConfigProblem(f"{where}.column_types.{col}", f"{kind!r} is not one of {', '.join(KINDS)}"))
        else:
            out[col] = kind
    if problems:
        raise ConfigError(problems)
    return out


# ---- cursor positions -------------------------------------------------------------


def encode_value(v: Any) -> list[Any]:
    """A cursor/key value as JSON: [type, text]; exact for decimals and datetimes."""
    if v is None:
        return ["null", None]
    if isinstance(v, bool):
        return ["int", int(v)]
    if isinstance(v, int):
        return ["int", v]
    if isinstance(v, dt.datetime):
        return ["datetime", v.isoformat()]
    if isinstance(v, dt.date):
        return ["date", v.isoformat()]
    if isinstance(v, Decimal | float):
        return ["decimal", str(v)]
    return ["str", str(v)]


def decode_value(e: Sequence[Any]) -> Any:
    kind, v = e
    if kind == "null" or v is None:
        return None
    if kind == "int":
        return int(v)
    if kind == "datetime":
        return dt.datetime.fromisoformat(v)
    if kind == "date":
        return dt.date.fromisoformat(v)
    if kind == "decimal":
        return Decimal(v)
    return v


def lagged(value: Any, lag_seconds: int) -> Any:
    """The cursor value `lag_seconds` earlier; only time cursors have a lag."""
    if not lag_seconds:
        return value
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=lag_seconds)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=-(-lag_seconds // 86400))
    return value


# ---- read-only query check -------------------------------------------------------

_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]")
_COMMENTS = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_WRITES = re.compile(
    r"\b(insert|update|delete|merge|upsert|replace|create|alter|drop|truncate|grant|revoke|call|exec|execute|"
    r"copy|lock|vacuum|attach|detach|pragma|set|into|load|handler|do|commit|rollback|savepoint)\b",
    re.I,
)


def check_select(query: str) -> str:
    """Accept one SELECT/WITH statement and nothing else; returns it without a trailing ';'."""
    q = query.strip().rstrip(";").strip()
    bare = _COMMENTS.sub(" ", _STRINGS.sub("''", q))
    first = bare.split(None, 1)[0].lower() if bare.split() else ""
    if first not in ("select", "with"):
        raise ValueError("query must be a single SELECT or WITH statement")
    if ";" in bare:
        raise ValueError("query must be a single statement (no ';' inside)")
    m = _WRITES.search(bare)
    if m:
        raise ValueError(f"query may only read; {m.group(1).upper()} is not allowed")
    return q


# ---- the row loop ----------------------------------------------------------------


def stream_events(
    *,
    source: str,
    where: str,
    names: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key_columns: Sequence[str],
    cursor_column: str | None,
    checks: dict[str, str],
    chunk_size: int,
    start: Any,
) -> Iterator[Event]:
    """Turn raw result tuples into SourceRow/RowProblem events with a Checkpoint every chunk.

    With a cursor column the position is {"cursor": [type, value], "key": [...]} of
    the last row (rows come ordered by cursor then key); without one, a full scan
    in key order checkpoints {"after": [...]} and ends with Checkpoint(None, snapshot=True).
    """
    key_idx = [names.index(k) for k in key_columns]
    cur_idx = names.index(cursor_column) if cursor_column else None
    conv = [(names.index(c), c, CONVERTERS[k]) for c, k in checks.items() if k in CONVERTERS]
    names = tuple(names)
    (one_key,) = key_idx if len(key_idx) == 1 else (None,)
    # The position is built from the last row's values only when a checkpoint is due
    # (encoding it for every row cost as much as the rest of the loop).
    last: Sequence[Any] | None = None

    def position() -> Any:
        if last is None:
            return start
        if cur_idx is not None:
            return {"cursor": encode_value(last[cur_idx]), "key": [encode_value(last[i]) for i in key_idx]}
        return {"after": [encode_value(last[i]) for i in key_idx]}

    n = 0
    for raw in rows:
        vals: Sequence[Any] = tuple(raw)
        if one_key is not None:
            k = vals[one_key]
            key = "" if k is None else str(k)
        else:
            key = "|".join("" if vals[i] is None else str(vals[i]) for i in key_idx)
        bad: RowProblem | None = None
        if conv:
            vals = list(vals)
            for i, col, fn in conv:
                v = vals[i]
                if v is None:
                    continue
                try:
                    vals[i] = fn(v)
                except ValueRejected as e:
                    bad = RowProblem(source, f"{where} key={key}", col, v, e.rule, f"列 {col} 的值 {v!r} {e.message}")
                    break
        n += 1
        if cur_idx is None or vals[cur_idx] is not None:  # rows with a NULL cursor are only read by full reads
            last = vals
        if bad is not None:
            yield bad
        else:
            version = vals[cur_idx] if cur_idx is not None else None
            yield SourceRow(key, dict(zip(names, vals, strict=True)), f"{where} key={key}", version)
        if n % chunk_size == 0:
            yield Checkpoint(position())
    if cur_idx is not None:
        yield Checkpoint(position())
    else:
        yield Checkpoint(None, snapshot=True)


def single_row(events: Iterable[Event]) -> SourceRow | None:
    """The one row of a re-read (fetch_one); a row that cannot be read raises SkippableError with its problem."""
    for e in events:
        if isinstance(e, RowProblem):
            err = SkippableError(str(e))
            err.problem = e  # type: ignore[attr-defined]
            raise err
        if isinstance(e, SourceRow):
            return e
    return None


def settings_problem(source: str, key: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(f"sources.{source}.settings.{key}", message)])


def apply_row_settings(adapter: Any, source: str, s: Mapping[str, Any]) -> None:
    """The settings every row-table adapter shares (sql, odbc): table or query, keys, cursor, lag, chunk."""
    if bool(s.get("table")) == bool(s.get("query")):
        raise settings_problem(source, "table", "give either table or query")
    keys = s.get("key_columns") or []
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise settings_problem(source, "key_columns", "list the columns that identify a row")
    adapter.key_columns = list(keys)
    adapter.cursor_column = s.get("cursor_column") or None
    adapter.lag_seconds = int(s.get("lag_seconds") or 0)
    adapter.chunk_size = max(1, int(s.get("chunk_size") or 2000))
    adapter.query = None
    if s.get("query"):
        try:
            adapter.query = check_select(s["query"])
        except ValueError as e:
            raise settings_problem(source, "query", str(e)) from None
