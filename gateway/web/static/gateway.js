// Small progressive enhancements; every page works without them.
"use strict";
const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

async function api(url, body) {
  const opts = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF},
  };
  const resp = await fetch(url, {credentials: "same-origin", ...opts});
  let data = {};
  try { data = await resp.json(); } catch (e) { data = {message: "服务器返回了无法解析的内容"}; }
  if (!resp.ok && !data.message) data.message = "请求失败（" + resp.status + "）";
  data._ok = resp.ok;
  return data;
}

function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}

// Dashboard: hub reachability, fetched after the page so a slow hub never slows the page.
const hub = document.getElementById("hub-health");
if (hub) {
  api(hub.dataset.url).then(d => {
    hub.textContent = d.ok ? "可访问" : "不可达";
    hub.className = "v " + (d.ok ? "okc" : "err");
    hub.title = d.message || "";
    hub.nextElementSibling.textContent = d.message || "";
  });
}

// Buttons that need a second thought.
document.querySelectorAll("form[data-confirm]").forEach(f => {
  f.addEventListener("submit", ev => { if (!confirm(f.dataset.confirm)) ev.preventDefault(); });
});

window.gw = {api, debounce, el};
