"""The gateway's own state: one SQLAlchemy Core metadata, versioned by migrations.py."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway.accounts.tables import audit_table, users_table

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String, nullable=False),
)

# Saved adapter position per source (cursor value, processed files ...), JSON.
source_positions = Table(
    "source_positions",
    metadata,
    Column("source", String, primary_key=True),
    Column("position", Text, nullable=True),
    Column("updated_at", String, nullable=False),
)

# Latest enqueued state per record: the fingerprint (version hash of the mapped
# record) and the per-key sequence number. Drives change and delete detection.
fingerprints = Table(
    "fingerprints",
    metadata,
    Column("source", String, nullable=False),
    Column("record_type", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("source_key", String, nullable=False),
    Column("version", String, nullable=False),  # "" once deleted
    Column("seq", Integer, nullable=False),
    Column("mapping_version", Integer, nullable=True),
    Column("updated_at", String, nullable=True),  # from the source
    # Last time the gateway saw the row; a fingerprint pass on batches covers unchanged rows in
    # memory (gateway/sync/passdigests.py) and leaves theirs as it was.
    Column("checked_at", String, nullable=False),
    Column("deleted", Integer, nullable=False, default=0),
    # Digest of the raw source row and of everything the mapping depends on
    # (gateway/sync/rowhash.py): an equal digest means mapping the row again gives
    # this `version`, so the sync skips mapping and validating it. NULL = unknown.
    Column("row_hash", LargeBinary, nullable=True),
    # The record's latest outbox row (its versions go back through outbox.prev_id): a record's outbox
    # rows are found through its fingerprint, so the outbox keeps no index on (record_type, record_key),
    # whose entry in scattered key order cost ~40% of a first sync's CPU (gateway/store/outbox.py).
    Column("outbox_id", Integer, nullable=True),
    UniqueConstraint("record_type", "record_key", name="uq_fingerprint_record"),
    # `deleted` last: the key-set reconciliation reads a source's live keys in key
    # order from this index alone (gateway/sync/keyset.py), without a row lookup each.
    Index("ix_fingerprints_source_key", "source", "source_key", "deleted"),
)

# Records waiting for (or done with) delivery, in enqueue order.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("record_type", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("op", String, nullable=False),  # upsert | delete
    Column("seq", Integer, nullable=False),
    Column("version", String, nullable=False),
    Column("data", Text, nullable=True),  # canonical JSON of the standard record; NULL for delete
    Column("updated_at", String, nullable=True),
    Column("provenance", Text, nullable=False),  # JSON
    Column("enqueued_at", String, nullable=False),
    # pending -> sent (in a batch, awaiting receipt) -> delivered | dead
    Column("state", String, nullable=False, default="pending"),
    Column("batch_id", String, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    # The same record's previous outbox row (NULL for its first): with fingerprints.outbox_id, a record's
    # versions newest first, by primary key.
    Column("prev_id", Integer, nullable=True),
    Index("ix_outbox_state_id", "state", "id"),
)

# One row per batch the push client built. A batch keeps its id and its
# `created` until its receipt is stored, so a resend after a crash or a lost
# response rebuilds the very same body and the hub answers with its original
# receipt. Also what the deliveries page shows about attempts and errors.
outbox_batches = Table(
    "outbox_batches",
    metadata,
    Column("batch_id", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("created", String, nullable=False),  # the batch body's `created`
    Column("records", Integer, nullable=False),
    # The outbox id range its rows were claimed from: a batch's rows are found by the primary key
    # (id BETWEEN first_id AND last_id AND batch_id = ?), with no index on outbox.batch_id to keep up
    # per record. NULL on batches claimed before schema version 7 (then found by batch_id alone).
    Column("first_id", Integer, nullable=True),
    Column("last_id", Integer, nullable=True),
    # sent -> receipted, or released (rows went back to pending unsent, e.g. 413)
    Column("state", String, nullable=False, default="sent"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_attempt_at", String, nullable=True),
    Column("last_status", String, nullable=True),  # HTTP status or error kind of the last attempt
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", String, nullable=True),
    Column("receipted_at", String, nullable=True),
    Index("ix_outbox_batches_state", "state", "created"),
)

# The receipt entries a record needs on its own: every result but a plain `accepted` (rejected,
# duplicate, stale) and the accepted ones stored before schema version 7. An accepted record's receipt
# is its batch's signed receipt (batch_receipts) with the record's outbox row `delivered` in that
# batch; gateway/push/record_receipts.py reads both as one per-record view.
receipts = Table(
    "receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id"), nullable=True),
    Column("batch_id", String, nullable=False),
    Column("record_type", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("status", String, nullable=False),  # accepted | rejected | duplicate | stale
    Column("reasons", Text, nullable=True),  # JSON list
    Column("hub_seq", Integer, nullable=True),
    Column("hub_time", String, nullable=True),
    Column("log_head", String, nullable=True),  # hub receipt-log head hash at this batch
    Column("received_at", String, nullable=False),
    Index("ix_receipts_record", "record_type", "record_key"),
    Index("ix_receipts_batch", "batch_id"),
    # A per-record push answers with the receipts of its outbox rows; without this every
    # answer scanned the whole table. outbox ids grow, so entries append at the index's end.
    Index("ix_receipts_outbox", "outbox_id"),
)

# The signed batch receipts as the hub sent them: the evidence a department keeps.
batch_receipts = Table(
    "batch_receipts",
    metadata,
    Column("batch_id", String, primary_key=True),
    Column("body", LargeBinary, nullable=False),  # receipt document exactly as signed
    Column("signature", String, nullable=False),
    Column("hub_key_id", String, nullable=False),
    Column("log_seq", Integer, nullable=True),
    Column("log_head", String, nullable=True),
    Column("received_at", String, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, ForeignKey("outbox.id"), nullable=False),
    Column("record_type", String, nullable=False),
    Column("record_key", String, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("reasons", Text, nullable=False),  # JSON list from the hub
    Column("created_at", String, nullable=False),
    Column("resolved_at", String, nullable=True),
    Column("resolved_by", String, nullable=True),
    Column("resolution", String, nullable=True),  # retried | resolved
)

mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", Text, nullable=False),  # mapping file text (TOML)
    Column("author", String, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_at", String, nullable=False),
    UniqueConstraint("source", "version", name="uq_mapping_version"),
)

# Records this gateway refused itself (the mapping or the standard's validation failed) whose
# key could still be read, with the reasons: records that name them are held back (held_records).
refused_records = Table(
    "refused_records",
    metadata,
    Column("record_type", String, primary_key=True),
    Column("record_key", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("source_key", String, nullable=False),
    Column("reasons", Text, nullable=False),  # Chinese, as in the sync's problem list
    Column("refused_at", String, nullable=False),
)

# Mapped, valid records not enqueued because a record they name (a stock record's material)
# was refused here and the hub does not hold it: enqueued when that record maps cleanly.
held_records = Table(
    "held_records",
    metadata,
    Column("record_type", String, primary_key=True),
    Column("record_key", String, primary_key=True),
    Column("source", String, nullable=False),
    Column("source_key", String, nullable=False),
    Column("data", Text, nullable=False),  # canonical JSON of the standard record
    Column("updated_at", String, nullable=True),
    Column("mapping_version", Integer, nullable=True),
    Column("waits_for_type", String, nullable=False),
    Column("waits_for_key", String, nullable=False),
    Column("held_at", String, nullable=False),
    Index("ix_held_records_waits_for", "waits_for_type", "waits_for_key"),
)

# One row per extract cycle, for the dashboard and `gateway sync` summaries.
sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("started_at", String, nullable=False),
    Column("finished_at", String, nullable=True),
    Column("status", String, nullable=False, default="running"),  # running | ok | failed
    Column("rows_read", Integer, nullable=False, default=0),
    Column("new", Integer, nullable=False, default=0),
    Column("changed", Integer, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),
    Column("unchanged", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("problems", Text, nullable=True),  # JSON list (first N RowProblems)
    Column("error", Text, nullable=True),
    Column("seconds", Float, nullable=True),
    Index("ix_sync_runs_source", "source", "id"),
)

# Rows refused now (by a source's mapping/validation, an unreadable line, or a spreadsheet
# import), one row per problem, kept until the row reads valid, is gone, or is corrected in
# the form (gateway/sync/problems.py). sync_runs only keeps each run's first problems.
current_problems = Table(
    "current_problems",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String, nullable=False),
    Column("source_key", String, nullable=False),  # the source row's key, else its locator
    Column("locator", String, nullable=False),
    Column("record_type", String, nullable=False),
    Column("record_key", String, nullable=True),  # when the mapped key fields are all present
    Column("field", String, nullable=True),
    Column("value", Text, nullable=True),
    Column("rule", String, nullable=False),
    Column("message", Text, nullable=False),
    Column("mapped", Text, nullable=True),  # JSON: the row's mapped values, to prefill the form
    Column("first_seen", String, nullable=False),
    Column("last_seen", String, nullable=False),
    Column("corrected_at", String, nullable=True),
    Column("corrected_by", String, nullable=True),
    Index("ix_current_problems_row", "source", "source_key"),
    Index("ix_current_problems_record", "record_type", "record_key"),
)

users = users_table("users", metadata)
audit = audit_table("audit", metadata)
