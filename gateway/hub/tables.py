"""The hub's database: one SQLAlchemy Core metadata (SQLite or PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
# SQLite wants INTEGER PRIMARY KEY for an auto-increment rowid.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

hub_schema_version = Table(
    "hub_schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", String, nullable=False),
)

# --- registry -------------------------------------------------------------
departments = Table(
    "departments",
    metadata,
    Column("code", String(40), primary_key=True),
    Column("name", String, nullable=False),
    Column("record_types", Json, nullable=False),  # list of record types it may write
    Column("created_at", String, nullable=False),
)

department_keys = Table(
    "department_keys",
    metadata,
    Column("key_id", String(128), primary_key=True),
    Column("department", String(40), nullable=False),
    Column("public_key", String, nullable=False),  # base64 of the raw Ed25519 key
    Column("added_at", String, nullable=False),
    Column("revoked_at", String, nullable=True),
    Index("ix_department_keys_department", "department"),
)

# reader may read owner's records of record_type; confidential: also confidential fields.
grants = Table(
    "grants",
    metadata,
    Column("reader", String(40), primary_key=True),
    Column("owner", String(40), primary_key=True),
    Column("record_type", String(20), primary_key=True),
    Column("confidential", Boolean, nullable=False, default=False),
    Column("granted_at", String, nullable=False),
)

# A lower hub's key (docs/hub.md, "Levels"): it may forward records of the departments of its area.
relays = Table(
    "relays",
    metadata,
    Column("key_id", String(128), primary_key=True),
    Column("name", String, nullable=False),
    Column("public_key", String, nullable=False),
    Column("departments", Json, nullable=False),  # list of department codes: the relay's area
    Column("added_at", String, nullable=False),
    Column("revoked_at", String, nullable=True),
)

# One row (id 1), bumped by every registry write (departments, keys, grants): hub processes keep
# the registry in memory and read it afresh when this number moves (gateway.hub.registry.RegistryCache).
registry_version = Table(
    "registry_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
)

# Replay cache: a (key, nonce) pair is refused until it expires (created + window).
nonces = Table(
    "nonces",
    metadata,
    Column("key_id", String(128), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_nonces_expires", "expires_at"),
)

# --- records --------------------------------------------------------------
records = Table(
    "records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("department", String(40), nullable=False),
    Column("type", String(20), nullable=False),
    Column("key", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("version", String, nullable=False),
    Column("data", Json, nullable=True),  # normalised standard record; NULL once deleted
    Column("updated_at", String, nullable=True),  # from the source
    Column("deleted", Boolean, nullable=False, default=False),
    Column("provenance", Json, nullable=True),
    Column("hub_seq", BigInteger, nullable=False),  # write order, in commit order within a department
    Column("batch_id", String(36), nullable=False),  # the batch that wrote it (batches.log_seq: its log entry)
    Column("received_at", String, nullable=False),
    UniqueConstraint("department", "type", "key", name="uq_records_key"),
    Index("ix_records_read", "department", "type", "hub_seq"),  # the read API's keyset pages
)

# Every accepted state, without data: who changed what, when, from which batch.
record_history = Table(
    "record_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("department", String(40), nullable=False),
    Column("type", String(20), nullable=False),
    Column("key", String, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("version", String, nullable=False),
    Column("op", String(10), nullable=False),
    Column("hub_seq", BigInteger, nullable=False),
    Column("batch_id", String(36), nullable=False),
    Column("received_at", String, nullable=False),
    Index("ix_record_history_key", "department", "type", "key"),
)

batches = Table(
    "batches",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("department", String(40), nullable=False),
    Column("source", String, nullable=True),
    Column("request_digest", String, nullable=False),
    Column("log_seq", BigInteger, nullable=False),
    Column("receipt", LargeBinary, nullable=False),  # the signed receipt body, exact bytes
    Column("signature", String, nullable=False),
    Column("received_at", String, nullable=False),
)

# hub_seq of accepted records on PostgreSQL, drawn under the department's lock
# (SQLite counts on from log_head.hub_seq under its one write lock).
hub_seq_counter = Sequence("hub_seq_counter", metadata=metadata)

# --- receipt log ----------------------------------------------------------
# Hash-chained: entry_hash = hash_alg(canonical JSON of every other column); hash_alg NULL is SHA-256
# (every entry before the suites, and every entry of an ed25519 hub), "sm3" under sm2-sm3.
receipt_log = Table(
    "receipt_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String, nullable=False),
    Column("department", String(40), nullable=True),
    Column("key_id", String(128), nullable=True),
    Column("kind", String(20), nullable=False),  # batch | refused | read | attachment
    Column("status", String(40), nullable=False),  # ok, or the refusal's error code
    Column("batch_id", String(36), nullable=True),
    Column("counts", Text, nullable=False),  # canonical JSON {"accepted": n, ...}
    Column("request_digest", String, nullable=True),
    Column("summary", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Column("hash_alg", String(16), nullable=True),
    Index("ix_receipt_log_department", "department", "seq"),
    Index("ix_receipt_log_time", "time"),
)

# One row, locked by every append: the serialisation point of the log, and the
# hub's signed checkpoint of the head. hub_seq: the highest handed out.
log_head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("log_seq", BigInteger, nullable=False),
    Column("log_head", String(64), nullable=False),
    Column("hub_seq", BigInteger, nullable=False),
    Column("signature", String, nullable=True),  # hub signature over {"log_head","log_seq"}
    Column("signed_at", String, nullable=True),
)

# Per-record outcome of every batch, for the operators' UI (keyset paging on id).
receipts = Table(
    "receipts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("batch_id", String(36), nullable=False),  # batches.log_seq / receipt_log.batch_id: its log entry
    Column("department", String(40), nullable=False),
    Column("type", String, nullable=False),  # as sent: a rejected record may name no valid type
    Column("key", String, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("status", String(10), nullable=False),
    Column("reasons", Text, nullable=True),  # canonical JSON list, NULL when none
    Column("hub_time", String, nullable=False),
    Index("ix_receipts_department", "department", "id"),
    Index("ix_receipts_status", "status", "id"),
    Index("ix_receipts_time", "hub_time"),
    Index("ix_receipts_key", "department", "type", "key"),
    Index("ix_receipts_batch", "batch_id"),
)

attachments = Table(
    "attachments",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("type", String(10), nullable=False),
    Column("name", String, nullable=True),
    Column("department", String(40), nullable=False),  # first uploader
    Column("stored_at", String, nullable=False),
)

# --- forwarding to the upper hub (gateway.hub.forward) ------------------------------------------
# One row per stored batch with accepted records, written in that batch's own transaction when the hub
# has an [upstream]: so no batch is accepted without being queued. It holds what the batch sends upward
# (gateway.hub.forward.envelopes), so the forwarder reads no record back. state: queued | claimed |
# superseded (a row without a body — backfilled, or queued before bodies were stored — whose records were
# all overwritten by a later batch before it left, which forwards them instead).
forward_outbox = Table(
    "forward_outbox",
    metadata,
    Column("batch_id", String(36), primary_key=True),
    Column("department", String(40), nullable=False),
    Column("queued_at", String, nullable=False),
    Column("state", String(12), nullable=False),
    Column("forward_id", String(36), nullable=True),  # the forwarded batch that carried its records
    Column("log_seq", BigInteger, nullable=True),  # the batch's receipt-log entry: the order batches leave in
    Column("records", Integer, nullable=True),  # envelopes in `body`
    # The upward envelopes, canonical JSON; NULL: read back from `records` at the claim (backfill, old rows).
    Column("body", LargeBinary, nullable=True),
    # Their leaf hashes under the upper hub's digest (gateway.hub.forward.envelopes.leaf_hashes); NULL: not made.
    Column("leaves", LargeBinary, nullable=True),
    Index("ix_forward_outbox_state", "state", "department", "queued_at"),
    Index("ix_forward_outbox_order", "state", "department", "log_seq"),
    Index("ix_forward_outbox_forward", "forward_id"),
)

# A batch as sent upward (its exact body in `forward_bodies`), and once answered, the upper hub's signed receipt.
# state: sent (awaiting a verified receipt) | delivered | refused (a 4xx the operator must look at).
forward_batches = Table(
    "forward_batches",
    metadata,
    Column("forward_id", String(36), primary_key=True),
    Column("department", String(40), nullable=False),
    Column("records", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("claimed_at", String, nullable=False),
    Column("delivered_at", String, nullable=True),
    Column("upstream_key_id", String(128), nullable=True),  # the upper hub's key id in its receipt
    Column("log_seq", BigInteger, nullable=True),  # the upper hub's receipt-log entry
    Column("receipt", LargeBinary, nullable=True),  # the upper hub's signed receipt, exact bytes
    Column("signature", String, nullable=True),
    Index("ix_forward_batches_state", "state", "claimed_at"),
)

# An upward batch's exact body, written once at the claim: every resend is the same bytes under the same batch
# id, so the upper hub answers a resend with its first receipt. Apart from `forward_batches` so that settling
# a batch rewrites a small row, not the ~250 KB body with it (SQLite rewrites the whole row on UPDATE).
forward_bodies = Table(
    "forward_bodies",
    metadata,
    Column("forward_id", String(36), primary_key=True),  # forward_batches.forward_id
    Column("body", LargeBinary, nullable=False),
    Column("leaves", LargeBinary, nullable=True),  # the body's records' leaf hashes, when all its rows had them
)

# The operators UI adds its accounts/audit tables and browse indexes to this metadata.
from gateway.hub import ui_tables  # noqa: E402,F401
