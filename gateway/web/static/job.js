// A running job's page: poll its state, move the bar, show the outcome (an import opens its result page).
"use strict";
(function () {
  const box = document.getElementById("job");
  if (!box || box.dataset.state !== "running") return;
  const {el} = window.gw;
  const bar = document.getElementById("job-bar");
  const count = document.getElementById("job-count");
  const state = document.getElementById("job-state");
  const outcome = document.getElementById("job-outcome");

  async function poll() {
    let job;
    try {
      const resp = await fetch(box.dataset.api, {credentials: "same-origin", headers: {"Accept": "application/json"}});
      job = await resp.json();
    } catch (e) {
      setTimeout(poll, 2000);  // the server restarting or the network: try again
      return;
    }
    count.textContent = "已读取 " + job.done + (job.total !== null ? " / " + job.total : "") + " 行";
    if (job.total) { bar.max = job.total; bar.value = job.done; }
    state.textContent = job.state_label;
    if (job.state === "running") { setTimeout(poll, 500); return; }
    bar.max = Math.max(job.done, 1); bar.value = Math.max(job.done, 1);
    if (job.state === "done" && box.dataset.follow && job.result_url) { location.replace(job.result_url); return; }
    const kids = [el("p", {class: "flash " + (job.state === "done" ? "ok" : "error"), id: "job-message"}, job.message)];
    if (job.result_url) kids.push(el("p", {}, el("a", {href: job.result_url, id: "job-result"}, "查看数据源")));
    outcome.replaceChildren(...kids);
  }
  poll();
})();
