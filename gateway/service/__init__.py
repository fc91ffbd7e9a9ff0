"""The long-running gateway service and the per-record push core.

- ``push_record_now(config, engine, source, key, operator) -> PushOutcome``
  (and ``RecordPusher`` to reuse one HTTP session across many pushes);
- ``gateway.service.runtime.GatewayService``: scheduler + push worker + web
  server + pg-notify listeners in one process, stopped gracefully on SIGTERM.
"""

from gateway.service.record_push import PushOutcome, RecordPusher, push_record_now

__all__ = ["PushOutcome", "RecordPusher", "push_record_now"]
