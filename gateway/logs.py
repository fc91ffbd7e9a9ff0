"""Structured logs: one JSON object per line on stdout, which journald keeps as is."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """JSON log lines on `stream` (stderr by default, so a command's own output on stdout
    stays parseable; the long-running services pass stdout, which journald records)."""
    root = logging.getLogger()
    stream = stream or sys.stderr
    for h in root.handlers:
        if getattr(h, "_gateway", False):
            h.setStream(stream)  # type: ignore[attr-defined]
            root.setLevel(level.upper())
            return
    h = logging.StreamHandler(stream)
    h.setFormatter(JsonFormatter())
    h._gateway = True  # type: ignore[attr-defined]
    root.addHandler(h)
    root.setLevel(level.upper())
    for noisy in ("paramiko", "urllib3", "apscheduler.executors", "waitress.queue"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    """Log with structured fields: log(LOG, logging.INFO, "sync done", source="x", rows=10)."""
    logger.log(level, msg, extra={"fields": fields})
