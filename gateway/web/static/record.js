// Record form: run the standard's checks on the server as the user types (debounced).
"use strict";
(function () {
  const form = document.getElementById("record-form");
  if (!form) return;
  const state = document.getElementById("validate-status");
  const {debounce} = window.gw;
  const touched = new Set();
  let seq = 0;

  async function run() {
    const mine = ++seq;
    const body = new URLSearchParams(new FormData(form));
    let data;
    try {
      const resp = await fetch(form.dataset.validate, {
        method: "POST", body, credentials: "same-origin",
        headers: {"X-CSRF-Token": form.querySelector("[name=csrf_token]").value, "Accept": "application/json"},
      });
      data = await resp.json();
    } catch (e) {
      state.textContent = "校验请求失败";
      return;
    }
    if (mine !== seq) return;
    const byField = {};
    for (const e of data.errors || []) (byField[e.field || ""] ||= []).push(e.message);
    form.querySelectorAll("[data-error-for]").forEach(span => {
      const name = span.dataset.errorFor;
      // Only fields the user has touched show errors, so a fresh form is not all red.
      const show = name === "" ? touched.size > 0 : touched.has(name);
      span.textContent = show ? (byField[name] || []).join("；") : "";
      const input = form.querySelector(`[name="${name}"]`);
      if (input) input.classList.toggle("bad", show && !!byField[name]);
    });
    state.textContent = data.ok ? "校验通过" : (data.message || `尚有 ${(data.errors || []).length} 处需要修改`);
  }

  const later = debounce(run, 350);
  form.addEventListener("input", ev => { if (ev.target.name) touched.add(ev.target.name); later(); });
  form.addEventListener("change", ev => { if (ev.target.name) touched.add(ev.target.name); later(); });
  form.addEventListener("submit", () => form.querySelectorAll("[name]").forEach(i => touched.add(i.name)));
})();
