// Mapping editor: re-run the preview on the sample rows whenever the form changes.
"use strict";
(function () {
  const form = document.getElementById("mapping-form");
  if (!form) return;
  const out = document.getElementById("preview");
  const problemsBox = document.getElementById("preview-problems");
  const summary = document.getElementById("preview-summary");
  const textBox = document.getElementById("preview-text");
  const impactBox = document.getElementById("preview-impact");
  const rowFieldsBox = document.getElementById("preview-row-fields");
  const {el, debounce} = window.gw;
  let seq = 0;

  async function run() {
    const mine = ++seq;
    const body = new URLSearchParams(new FormData(form));
    summary.textContent = "预览中…";
    let data;
    try {
      const resp = await fetch(form.dataset.preview, {
        method: "POST", body, credentials: "same-origin",
        headers: {"X-CSRF-Token": form.querySelector("[name=csrf_token]").value, "Accept": "application/json"},
      });
      data = await resp.json();
    } catch (e) {
      data = {ok: false, problems: ["预览请求失败，请检查网络或重新登录"], rows: []};
    }
    if (mine !== seq) return;  // a newer preview is on its way
    problemsBox.replaceChildren(...(data.problems || (data.message ? [data.message] : [])).map(p => el("p", {class: "flash error"}, p)));
    if (data.text) textBox.textContent = data.text;
    summary.textContent = data.summary || (data.ok ? "" : "映射有误，未能预览");
    // What saving would change over the whole source (records changed, deleted and re-created).
    const impact = data.impact;
    impactBox.textContent = impact ? impact.summary : "";
    impactBox.className = impact && (impact.rekeyed || impact.newly_failing) ? "flash error" : "muted";
    // Fields the bulk sync cannot compute column by column (an expression, a template, ...), and why.
    rowFieldsBox.textContent = data.row_fields || "";
    if (!data.ok) { out.replaceChildren(); return; }
    const fields = data.fields.filter(f => data.rows.some(r => (r.record && f.name in r.record) || r.errors.some(e => e.field === f.name)));
    const head = el("tr", {}, el("th", {}, "位置"), ...fields.map(f => el("th", {}, f.label)));
    const body2 = data.rows.map(r => {
      const errs = Object.fromEntries(r.errors.map(e => [e.field, e]));
      return el("tr", {class: r.ok ? "" : "bad-row"}, el("td", {class: "nowrap"}, r.locator),
        ...fields.map(f => {
          if (errs[f.name]) return el("td", {class: "err", title: "原值：" + (errs[f.name].value ?? "")}, errs[f.name].message);
          const v = r.record ? r.record[f.name] : "";
          return el("td", {}, v === undefined || v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v)));
        }));
    });
    out.replaceChildren(el("table", {id: "preview-table"}, el("thead", {}, head), el("tbody", {}, ...body2)));
    if (data.sample_error) problemsBox.append(el("p", {class: "flash error"}, data.sample_error));
  }

  const later = debounce(run, 400);
  form.addEventListener("input", later);
  form.addEventListener("change", later);
  run();
})();
