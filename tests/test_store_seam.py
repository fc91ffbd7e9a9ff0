"""The store seam: no module outside the store layers spells SQL against a declared table.

Statements on the tables of gateway/store/tables.py and gateway/hub/tables.py are
built from those tables with SQLAlchemy, in gateway/store/ (the gateway) and
gateway/hub/store/ (the hub). Everywhere else, a string literal (or f-string)
that writes INSERT INTO / UPDATE / DELETE FROM / ... FROM / JOIN followed by a
declared table's name, or by an interpolated ``{something.name}``, is hand-built
SQL and fails this test. Docstrings are prose and are not scanned.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gateway.hub import tables as hub_tables
from gateway.store import tables as gateway_tables

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway"
STORE_LAYERS = (PACKAGE / "store", PACKAGE / "hub" / "store")

# No module is exempt. Raw SQL that stays outside the store layers names no declared table, so the
# check passes it: the hub's pg advisory locks (gateway/hub/db.py), pg_notify's catalogue queries and
# triggers on a source's tables (gateway/service/pg_notify.py), the adapters' queries of a source's
# own tables (gateway/adapters/), the source file's sqlite_master read (gateway/sync/reread.py) and
# the demo's source tables (gateway/demo/files.py).

TABLE_NAMES = frozenset(gateway_tables.metadata.tables) | frozenset(hub_tables.metadata.tables)
_TARGET = r"(?:\"?(?:" + "|".join(sorted(map(re.escape, TABLE_NAMES), key=len, reverse=True)) + r")\"?\b|\{[^{}]*\.name\})"
DML = re.compile(
    r"\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE|DELETE\s+FROM|FROM|JOIN)\s+(?:main\.|temp\.)?" + _TARGET,
    re.IGNORECASE,
)


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _literal_text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each `{expr}` kept as written."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + "}"  # type: ignore[attr-defined]
            for v in node.values
        )
    return None


def hand_built_sql(source: str) -> list[tuple[int, str]]:
    """(line, statement text) of each string literal in `source` that is DML against a declared table."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    skip |= {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}  # seen whole
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        text = _literal_text(node)
        if text is not None and DML.search(text):
            found.append((node.lineno, text))  # type: ignore[attr-defined]
    return found


def _outside_store() -> list[Path]:
    return [
        p for p in sorted(PACKAGE.rglob("*.py"))
        if not any(p.is_relative_to(layer) for layer in STORE_LAYERS)
    ]


def test_no_hand_built_sql_against_declared_tables_outside_the_store() -> None:
    offenders = []
    for path in _outside_store():
        rel = str(path.relative_to(ROOT))
        for line, text in hand_built_sql(path.read_text(encoding="utf-8")):
            offenders.append(f"{rel}:{line}: {text.strip()[:100]!r}")
    assert offenders == [], "SQL against a declared table outside gateway/store/ and gateway/hub/store/:\n" + "\n".join(offenders)


def test_the_check_sees_what_the_old_code_wrote() -> None:
    # Shapes this module replaced (gateway/sync/changes.py, gateway/push/*.py before the store seam).
    assert hand_built_sql('X = "UPDATE fingerprints SET checked_at = ? WHERE record_type = ?"')
    assert hand_built_sql('X = f"INSERT INTO {outbox.name} ({cols}) VALUES (?)"')
    assert hand_built_sql('X = f"SELECT 1 FROM {table.name} WHERE record_type IN ({marks}) LIMIT 1"')
    assert hand_built_sql('X = "SELECT record_key, version FROM fingerprints WHERE record_type = ? "')
    assert hand_built_sql('X = f"INSERT OR IGNORE INTO {batch_receipts.name} (batch_id) VALUES (?)"')
    assert hand_built_sql('X = "INSERT INTO records (k) VALUES (?)"')  # a hub table
    # Prose, a source's own tables and the catalogues are not DML on a declared table.
    assert not hand_built_sql('def f():\n    """SELECT per few hundred keys, from fingerprints."""')
    assert not hand_built_sql('X = "SELECT column_name FROM information_schema.columns"')
    assert not hand_built_sql('X = f"SELECT * FROM ({self.query}) q WHERE 1 = 0"')
    assert not hand_built_sql('X = "SELECT pg_advisory_xact_lock(%s)"')
