"""后台任务 as the admin sees them: a running job's count and bar, one sync per source at a time, a failure named."""

from __future__ import annotations

import threading

from gateway.web.jobs import board
from tests.fixtures.web import client_as, csrf_of, job_outcome


def _blocked_job(app, kind: str, target: str, gate: threading.Event, reached: threading.Event):  # type: ignore[no-untyped-def]
    def work(job) -> None:  # type: ignore[no-untyped-def]
        job.advance(120)
        reached.set()
        gate.wait(30)
        job.message = "同步完成：读取 450 行"

    with app.app_context():
        return board().start(app, kind, target, f"同步数据源 {target}", "admin", work, total=450)


def test_a_running_job_shows_its_count_and_a_second_sync_of_the_source_joins_it(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "admin")
    gate, reached = threading.Event(), threading.Event()
    job = _blocked_job(gw_site, "sync", "wz_db", gate, reached)
    try:
        assert reached.wait(10)
        state = c.get(f"/jobs/{job.id}/api").get_json()
        assert state["state"] == "running" and state["done"] == 120 and state["total"] == 450
        page = c.get(f"/jobs/{job.id}").get_data(as_text=True)
        assert "进行中" in page and "已读取 120 / 450 行" in page and 'max="450" value="120"' in page
        # Asking for another sync of the same source shows the running one instead of starting a second.
        r = c.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(c, "/sources/")})
        assert r.status_code == 302 and r.headers["Location"].endswith(f"/jobs/{job.id}")
    finally:
        gate.set()
    page = job_outcome(c, r)
    assert "已完成" in page and "同步完成：读取 450 行" in page and "已读取 450 / 450 行" in page


def test_a_failed_job_says_what_failed_and_unknown_jobs_are_404(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "admin")
    cfg = gw_site.extensions["gateway"].config
    cfg.source("wz_db").settings["url"] = "sqlite:////nonexistent/dir/wz.db"
    page = job_outcome(c, c.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(c, "/sources/")}))
    assert "失败" in page and "同步数据源 wz_db失败" in page
    assert c.get("/jobs/0123456789abcdef").status_code == 404
    viewer = client_as(gw_site, "viewer")
    assert viewer.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(viewer, "/sources/")}).status_code == 403
