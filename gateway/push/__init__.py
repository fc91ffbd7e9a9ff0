"""Push the outbox to the hub: batches, retries, verified receipts, dead letters (see docs/push.md)."""

from gateway.push.client import PushClient, PushSummary, push_pending
from gateway.push.receipts import ReceiptResult
from gateway.push.worker import PushWorker

__all__ = ["PushClient", "PushSummary", "PushWorker", "ReceiptResult", "push_pending"]
