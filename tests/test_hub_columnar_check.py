"""check_records with and without its vectorised step (gateway/hub/columnar_check.py) gives the same Candidates:
the same clean records, type for type, and the same reasons, on a generated corpus that breaks every rule of
the standard, with envelope problems, withheld fields, key mismatches and deletes mixed in."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from gateway.hub.columnar_check import MIN_ROWS, proven_valid
from gateway.hub.ingest import check_records
from gateway.protocol.batch import parse_batch
from gateway.standard.schema import RECORD_TYPES
from tests.fixtures.hub import batch_body, record, sample
from tests.test_standard_vectorised import CTX, CTX_TABLE, EVERY_RULE, corpus

_INT64 = 2**63


def _wire(v: Any) -> Any:
    """A value as it reaches the hub: JSON (Decimal and dates as text, ints beyond 64 bits as text)."""
    if isinstance(v, int) and not isinstance(v, bool) and not -_INT64 <= v < _INT64:
        return str(v)
    if isinstance(v, list):
        return [_wire(x) for x in v]
    if isinstance(v, dict):
        return {k: _wire(x) for k, x in v.items()}
    return v


def _batches(seed: int, per_type: int, size: int = 100) -> list[list[dict[str, Any]]]:
    """Hub batches of the corpus: `size` consecutive records of each type (as one source's rows, one spelling
    per column for a stretch), the types shuffled together in each batch, as gateways send them."""
    rng = random.Random(seed)
    by_type = {t: [_envelope(rng, t, i, data) for i, data in enumerate(records)]
               for t, records in corpus(seed, per_type).items()}
    batches = []
    for start in range(0, per_type, size):
        batch = [e for envs in by_type.values() for e in envs[start : start + size]]
        rng.shuffle(batch)
        batches.append(batch)
    return batches


def _envelope(rng: random.Random, t: str, i: int, data: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(_wire(data), default=str, ensure_ascii=False))
    env = record(t, data, seq=1 + i)
    kind = rng.randrange(40)
    if kind == 0:
        env["seq"] = -1  # envelope problem
    elif kind == 1:
        env["key"] = env["key"] + "-其他"  # key does not match the data
    elif kind == 2:
        env.update(op="delete", data=None)
    elif kind == 3:
        env["type"] = "warehouse"  # unknown type
    elif kind == 4 and t in ("depot", "stock", "agreement"):
        hidden = [f.name for f in RECORD_TYPES[t].fields if f.confidential]
        for name in hidden:
            data.pop(name, None)
        env["provenance"] = {**env["provenance"], "withheld": hidden}
    elif kind == 5:
        env["provenance"] = {**env["provenance"], "withheld": ["material_name"]}  # not confidential
    return env


def _same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.envelope_ok == y.envelope_ok, x.rec
        assert repr(x.clean) == repr(y.clean), x.rec  # type for type: 35 is not 35.0
        assert x.reasons == y.reasons, x.rec


@pytest.mark.parametrize("seed", [3, 4])
def test_vectorised_step_gives_the_row_paths_candidates(seed: int) -> None:
    batches = _batches(seed, 800)
    rules: set[str] = set()
    proven = valid = 0
    for ctx in (CTX, CTX_TABLE):
        for batch in batches:
            part = parse_batch(batch_body(batch)).records  # as the hub parses a batch
            fast = check_records(part, ctx, from_relay=True, vectorise_from=1)
            rows = check_records(part, ctx, from_relay=True, vectorise_from=None)
            _same(fast, rows)
            rules.update(r["rule"] for c in rows for r in c.reasons)
            proven += len(proven_valid(rows, ctx.today, ctx, 1))
            valid += sum(1 for c in rows if c.clean is not None and not c.reasons)
    assert EVERY_RULE <= rules, EVERY_RULE - rules
    assert {"key_mismatch", "withheld", "record_type", "envelope"} <= rules
    assert proven >= 0.6 * valid, (proven, valid)  # the vectorised step is what validates most valid records


def test_what_gateways_send_is_proven_valid_by_the_vectorised_step() -> None:
    """Gateways send canonical records, one spelling per column: the vectorised step proves them all, but for
    the agreements, whose items (lists of objects) go the row path."""
    envelopes = [record(t, sample(t, n)) for n in range(1, 101) for t in ("material", "stock", "agreement")]
    part = parse_batch(batch_body(envelopes)).records
    rows = check_records(part, CTX, vectorise_from=None)
    assert all(c.clean is not None and not c.reasons for c in rows)
    proven = proven_valid(rows, CTX.today, CTX, 1)
    assert sorted(proven) == [i for i, e in enumerate(part) if e["type"] != "agreement"]
    _same(check_records(part, CTX, vectorise_from=1), rows)


def test_small_batches_and_withheld_records_go_the_row_path() -> None:
    envelopes = [e for b in _batches(5, 200) for e in b if e["type"] == "depot" and e["op"] == "upsert"]
    few = parse_batch(batch_body(envelopes[:49])).records
    assert proven_valid(check_records(few, CTX, vectorise_from=None), CTX.today, CTX, 50) == {}
    many = parse_batch(batch_body(envelopes)).records
    got = proven_valid(check_records(many, CTX, from_relay=True, vectorise_from=None), CTX.today, CTX, 1)
    withheld = {i for i, e in enumerate(many) if "withheld" in e["provenance"]}
    assert got and withheld and not withheld & got.keys()


def test_by_default_only_a_type_with_min_rows_records_in_the_batch_is_vectorised() -> None:
    """Below MIN_ROWS of a type, Arrow's fixed cost per batch outweighs what it saves (docs/hub.md, "Performance")."""
    part = parse_batch(batch_body([record("material", sample("material", n)) for n in range(1, MIN_ROWS + 1)]
                                  + [record("depot", sample("depot"))])).records
    rows = check_records(part, CTX, vectorise_from=None)
    assert sorted(proven_valid(rows, CTX.today, CTX)) == list(range(MIN_ROWS))  # the materials, not the depot
    _same(check_records(part, CTX), rows)
