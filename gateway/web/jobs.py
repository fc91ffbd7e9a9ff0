"""后台任务: a manual sync or a spreadsheet import runs as a job in the UI's process, so the admin
sees rows counted as they are read instead of a request that blocks until the end (or times out
behind a proxy). One job per (kind, target) at a time; finished jobs are kept for a while so the
page that polls them, and a later visit, still find the outcome."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, abort, current_app, jsonify, render_template

from gateway.accounts.web import require
from gateway.logs import log

LOG = logging.getLogger("gateway.web.jobs")
KEEP_FINISHED = 50
STATE_LABELS = {"running": "进行中", "done": "已完成", "failed": "失败"}


@dataclass
class Job:
    id: str
    kind: str  # "sync" | "import"
    target: str  # the source name or the uploaded file name
    title: str  # Chinese, e.g. 同步数据源 wz_db
    owner: str
    state: str = "running"
    done: int = 0  # rows read so far
    total: int | None = None  # rows expected, when known beforehand
    message: str = ""  # the outcome, in Chinese
    ok: bool = True  # False: finished with something the user must look at (a failure, refused rows)
    result_url: str | None = None  # where the outcome is shown in full (an import's result page)
    payload: Any = field(default=None, repr=False)  # what the result page renders
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    def advance(self, done: int) -> None:
        self.done = done if self.total is None else min(done, self.total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "target": self.target, "title": self.title, "state": self.state,
            "state_label": self.state_label, "done": self.done, "total": self.total, "message": self.message,
            "ok": self.ok, "result_url": self.result_url,
            "seconds": round((self.finished or time.time()) - self.started, 1),
        }


class JobBoard:
    """The UI process's jobs; work runs on its own thread inside the app's context."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def running(self, kind: str, target: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.kind == kind and j.target == target and j.state == "running"), None)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def start(self, app: Flask, kind: str, target: str, title: str, owner: str,
              work: Callable[[Job], None], total: int | None = None) -> Job:
        """Run `work(job)`; it sets job.message (and ok, result_url). An exception fails the job with its text."""
        with self._lock:
            job = Job(secrets.token_hex(8), kind, target, title, owner, total=total)
            self._jobs[job.id] = job
            self._forget_old()

        def run() -> None:
            with app.app_context():
                try:
                    work(job)
                    job.state = "done"
                except Exception as e:  # the job's outcome is shown to the user, not lost in a thread
                    log(LOG, logging.WARNING, "job failed", job=job.id, kind=kind, target=target, error=str(e))
                    job.state, job.ok, job.message = "failed", False, f"{title}失败：{e}"
                finally:
                    if job.total is not None and job.state == "done":
                        job.done = job.total
                    job.finished = time.time()

        threading.Thread(target=run, name=f"job-{kind}-{job.id}", daemon=True).start()
        return job

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.state != "running"), key=lambda j: j.finished or 0)
        for j in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[j.id]


def board() -> JobBoard:
    return current_app.extensions.setdefault("jobs", JobBoard())  # type: ignore[no-any-return]


bp = Blueprint("jobs", __name__, url_prefix="/jobs")


def _job(job_id: str) -> Job:
    job = board().get(job_id)
    if job is None:
        abort(404, description="任务不存在或已过期")
    return job


@bp.get("/<job_id>")
@require("view")
def show(job_id: str) -> Any:
    return render_template("job.html", job=_job(job_id))


@bp.get("/<job_id>/api")
@require("view")
def api(job_id: str) -> Any:
    return jsonify(_job(job_id).as_dict())
