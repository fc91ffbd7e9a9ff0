"""The gateway's state store (positions, fingerprints, outbox, receipts, users, audit)."""

from gateway.store.db import open_store, utcnow

__all__ = ["open_store", "utcnow"]
