"""The same hub scenarios on PostgreSQL (SELECT ... FOR UPDATE serialisation, JSONB, ON CONFLICT upserts)."""

from __future__ import annotations

import pytest

from tests import test_hub_ingest as ingest
from tests import test_hub_log as log
from tests import test_hub_sharing as sharing
from tests.fixtures.hub import LiveHub


def test_pg_valid_batches(live_hub_pg: LiveHub) -> None:
    assert live_hub_pg.engine.dialect.name == "postgresql"
    ingest.test_valid_batches_are_all_accepted_with_signed_receipts(live_hub_pg)


def test_pg_forgeries_and_idempotency(live_hub_pg: LiveHub) -> None:
    ingest.test_every_forgery_is_refused_and_logged(live_hub_pg)
    ingest.test_same_batch_twice_returns_identical_receipt(live_hub_pg)


def test_pg_statuses_and_order(live_hub_pg: LiveHub) -> None:
    ingest.test_duplicate_stale_and_seq_conflict(live_hub_pg)
    ingest.test_out_of_order_batches_end_in_the_same_state(live_hub_pg)


def test_pg_cross_record_references(live_hub_pg: LiveHub) -> None:
    ingest.test_cross_record_references(live_hub_pg)


def test_pg_odd_records_rejected_alone(live_hub_pg: LiveHub) -> None:
    ingest.test_odd_records_are_rejected_alone_never_fail_the_batch(live_hub_pg)


def test_pg_concurrent_chain_and_tamper(live_hub_pg: LiveHub) -> None:
    log.test_concurrent_ingests_chain_correctly(live_hub_pg)


def test_pg_verify_log_flip(live_hub_pg: LiveHub) -> None:
    log.test_verify_log_names_the_first_bad_entry(live_hub_pg, "flip", 3)


@pytest.mark.parametrize("damage", ["zeroed", "deleted"])
def test_pg_verify_log_flags_a_zeroed_or_deleted_checkpoint(live_hub_pg: LiveHub, damage: str) -> None:
    log.test_verify_log_cli_flags_a_missing_zeroed_or_lagging_checkpoint(live_hub_pg, damage)


def test_pg_read_api(live_hub_pg: LiveHub) -> None:
    sharing.test_read_by_grant_withholds_confidential_fields(live_hub_pg)
