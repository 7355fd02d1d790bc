// The alert page: plain DOM, no build step, works offline (plots: plots.js with the vendored uPlot; the fleet
// overview: fleet.js). Every text that comes from data is set with textContent (sensor ids and notes are untrusted).
"use strict";
const $ = (sel) => document.querySelector(sel);
let apiKey = null, nextCursor = null, current = null;
let shownQuery = null;  // the filter the listed rows (and nextCursor) belong to: "Load more" reuses it

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v;  // through the CSSOM: the page's CSP refuses style attributes
    else node.setAttribute(k, v);
  }
  if (text !== null) node.textContent = text;
  return node;
}

// A number from the API as text: null stands for a non-finite value (JSON has no Infinity), e.g. the peak of an
// alert whose score overflowed; it must never stop the list or the detail from rendering.
function num(x, digits) {
  return typeof x === "number" && Number.isFinite(x) ? x.toFixed(digits) : (x === null ? "inf" : String(x));
}

function initKey() {
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get("key");
  if (fromUrl) {
    localStorage.setItem("monitor.apiKey", fromUrl);
    url.searchParams.delete("key");
    history.replaceState(null, "", url.pathname + url.search + url.hash);  // keep the key out of the address bar
  }
  apiKey = localStorage.getItem("monitor.apiKey");
  $("#keyform").hidden = !!apiKey;
  $("#who").textContent = apiKey ? "key " + apiKey.slice(0, 10) + "..." : "no API key";
}

async function api(path, options = {}) {
  const headers = { "Authorization": "Bearer " + apiKey, ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const resp = await fetch(path, { ...options, headers });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    if (resp.status === 401) { localStorage.removeItem("monitor.apiKey"); $("#keyform").hidden = false; }
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.where + ": " + d.reason).join("; ") : body.detail;
    throw new Error(resp.status + " " + (body.error || "") + ": " + (detail || resp.statusText));
  }
  return body;
}

function query() {
  const form = new FormData($("#filters"));
  const params = new URLSearchParams();
  for (const [k, v] of form.entries()) {
    if (v.trim()) params.set(k, v.trim());  // since / until: 1h, 2d or an ISO time with a zone (the API says why not)
  }
  return params;
}

async function loadAlerts(append = false) {
  $("#error").textContent = "";
  // "Load more" continues the listed filter, not the form's current (maybe unsubmitted) values: a cursor is
  // only valid for the filter it came from
  const filter = append && shownQuery ? shownQuery : query();
  const params = new URLSearchParams(filter);
  params.set("limit", "50");
  if (append && nextCursor) params.set("cursor", nextCursor);
  try {
    const page = await api("/alerts?" + params.toString());
    shownQuery = filter;
    const body = $("#alerts tbody");
    if (!append) body.replaceChildren();
    for (const a of page.items) body.appendChild(alertRow(a));
    nextCursor = page.next_cursor;
    $("#more").hidden = !nextCursor;
    if (!append && page.items.length === 0) $("#error").textContent = "no alerts match";
  } catch (e) { $("#error").textContent = e.message; }
}

const utcSecond = (iso) => iso.replace("T", " ").slice(0, 19) + " UTC";

// Who ended an alert matters to the on-call engineer: a person (acknowledged / resolved by a key) or the
// detector (closed_at set, no person resolved it).
function statusChip(a) {
  let kind = a.status, text = a.status;
  if (a.status === "acknowledged") text = "acknowledged" + (a.acknowledged_by ? " by " + a.acknowledged_by : "");
  else if (a.status === "resolved" && a.resolved_by) text = "resolved by " + a.resolved_by;
  else if (a.status === "resolved" && a.closed_at) [kind, text] = ["detector", "closed by detector"];
  return el("span", { class: "chip st-" + kind, "data-status": a.status }, text);
}

function alertRow(a) {
  const tr = el("tr", { "data-id": a.id });
  const labels = [...document.querySelectorAll("#alerts thead th")].map((th) => th.textContent);  // card labels on a phone
  const cells = [a.id, a.sensor_id, a.opened_at.replace("T", " ").slice(0, 19), statusChip(a),
    el("span", { class: "chip sev-" + a.severity }, a.severity),
    num(a.peak_score, 2) + " / " + num(a.threshold_at_peak, 2), a.window_count, (a.top_channels || []).join(", ")];
  cells.forEach((c, i) => {
    const td = el("td", { "data-label": labels[i], class: "c" + i }, c instanceof Node ? null : String(c));
    if (c instanceof Node) td.appendChild(c);
    tr.appendChild(td);
  });
  tr.addEventListener("click", () => openAlert(a.id));
  return tr;
}

async function openAlert(id) {
  document.querySelectorAll("#alerts tbody tr").forEach((r) => r.classList.toggle("sel", r.dataset.id === String(id)));
  $("#detail").hidden = false;
  $("#title").textContent = "Alert " + id + " (loading context...)";
  clearAlertPlots();
  $("#charts").replaceChildren();
  $("#detail").scrollIntoView({ block: "start" });
  try { render(await api("/alerts/" + id)); } catch (e) { $("#title").textContent = e.message; }
}

function render(a) {
  current = a;
  $("#title").textContent = "Alert " + a.id + ": " + a.sensor_id;
  const facts = $("#facts");
  facts.replaceChildren();
  const items = [["status", statusChip(a)], ["severity", el("span", { class: "chip sev-" + a.severity }, a.severity)],
    ["opened", utcSecond(a.opened_at)], ["closed", a.closed_at ? utcSecond(a.closed_at) : "-"],
    ["peak score", num(a.peak_score, 3)], ["threshold at peak", num(a.threshold_at_peak, 3)],
    ["windows", a.window_count], ["top channels", (a.top_channels || []).join(", ") || "-"], ["model", a.model_version],
    ["feedback", a.feedback ? a.feedback.verdict : "-"]];
  for (const [k, v] of items) {
    const value = v instanceof Node ? v : el("span", {}, String(v));
    value.id = "fact-" + k.replace(/ /g, "-");
    const fact = el("span", { class: "fact" });
    fact.append(el("b", {}, k + ": "), value);
    facts.appendChild(fact);
  }
  $("#ack").disabled = a.status !== "open";
  $("#resolve").disabled = a.status === "resolved";
  const ctx = a.context || { available: false, note: "context not requested", windows: [] };
  $("#contextnote").textContent = ctx.available ? (ctx.note === "ok" ? "" : ctx.note) : "no plot: " + ctx.note;
  renderEvidence(a, ctx);
  const charts = $("#charts");
  clearAlertPlots();
  charts.replaceChildren();
  $("#plotkey").hidden = !ctx.windows.length;
  if (ctx.windows.length) drawAlertPlots(charts, a, ctx);
  const contrib = $("#contrib");
  contrib.replaceChildren();
  const top = a.top_channels || [];
  for (const [name, share] of Object.entries(ctx.contributions || {}).sort((x, y) => y[1] - x[1])) {
    const row = el("div", { class: "bar" + (top.includes(name) ? " top" : "") });
    row.append(el("span", { class: "bar-name" }, name), el("span", { class: "fill", style: "width:" + Math.round(share * 300) + "px" }),
      el("span", {}, (share * 100).toFixed(1) + "%"));
    contrib.appendChild(row);
  }
  const events = $("#events");
  events.replaceChildren();
  for (const e of a.events) events.appendChild(el("li", {}, e.at + "  " + e.action + "  by " + e.actor + (e.note ? "  \u201c" + e.note + "\u201d" : "")));
}

// The evidence of the decision: the windows of the alert whose score was above the threshold in force, as the
// detector decided them (context source "evidence"), or re-scored (older alerts; the context note says so).
function renderEvidence(a, ctx) {
  const box = $("#evidence");
  box.replaceChildren();
  const inside = ctx.windows.filter((w) => w.in_alert);
  const scored = inside.filter((w) => w.score !== null && w.threshold !== null);
  if (!scored.length) {
    box.appendChild(el("p", { class: "muted" }, "no decision evidence for this alert" + (ctx.note ? " (" + ctx.note + ")" : "")));
    return;
  }
  const fired = scored.filter((w) => w.score > w.threshold);
  const ratio = typeof a.peak_score === "number" && typeof a.threshold_at_peak === "number" && a.threshold_at_peak > 0
    ? " (" + (a.peak_score / a.threshold_at_peak).toFixed(1) + "\u00d7)" : "";
  const how = ctx.source === "evidence" ? "as decided" : "re-computed (no decision-time evidence)";
  box.appendChild(el("p", { id: "evidence-summary" }, fired.length + " of " + inside.length + " windows in the alert scored " +
    "above their threshold (" + how + "); peak score " + num(a.peak_score, 3) + " against a threshold of " +
    num(a.threshold_at_peak, 3) + ratio + "."));
  const shown = fired.length > 12 ? [...fired].sort((x, y) => y.score - x.score).slice(0, 12)
    .sort((x, y) => Date.parse(x.window_end) - Date.parse(y.window_end)) : fired;
  const table = el("table", { class: "evidence" });
  const head = el("tr");
  for (const h of ["window end (UTC)", "score", "threshold", "score / threshold", "largest contributions"]) head.appendChild(el("th", {}, h));
  table.appendChild(el("thead")).appendChild(head);
  const body = table.appendChild(el("tbody"));
  for (const w of shown) {
    const tr = el("tr", w.score === a.peak_score ? { class: "peak" } : {});
    const parts = (w.contributions || []).map((c, i) => [ctx.channels[i], c]).filter((p) => p[1] !== null)
      .sort((x, y) => y[1] - x[1]).slice(0, 3).map((p) => p[0]);
    for (const c of [w.window_end.replace("T", " ").slice(0, 19), num(w.score, 3), num(w.threshold, 3),
      (w.score / w.threshold).toFixed(2) + "\u00d7", parts.join(", ")]) tr.appendChild(el("td", {}, c));
    body.appendChild(tr);
  }
  box.appendChild(table);
  if (shown.length < fired.length) box.appendChild(el("p", { class: "muted" }, "the " + shown.length + " highest of " + fired.length + " shown"));
}

async function act(path, body) {
  if (!current) return;
  $("#actionmsg").textContent = "";
  try {
    const out = await api("/alerts/" + current.id + path, { method: "POST", body: JSON.stringify(body) });
    const alert = out.alert || out;
    render({ ...alert, context: current.context });
    $("#actionmsg").textContent = out.threshold_note ? "saved: " + out.threshold_note : "saved";
    loadFleet();  // an acknowledged or resolved alert changes who is alerting
    const row = document.querySelector(`#alerts tbody tr[data-id="${alert.id}"]`);
    if (row) row.replaceWith(alertRow(alert)), document.querySelector(`#alerts tbody tr[data-id="${alert.id}"]`).classList.add("sel");
  } catch (e) { $("#actionmsg").textContent = e.message; }
}

function note() { const v = $("#note").value.trim(); return v ? v : null; }

window.addEventListener("DOMContentLoaded", () => {
  initKey();
  $("#keyform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    localStorage.setItem("monitor.apiKey", $("#keyinput").value.trim());
    initKey(); loadFleet(); loadAlerts();
  });
  $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadAlerts(); });
  $("#more").addEventListener("click", () => loadAlerts(true));
  $("#ack").addEventListener("click", () => act("/acknowledge", { note: note() }));
  $("#resolve").addEventListener("click", () => act("/resolve", { note: note() }));
  $("#tp").addEventListener("click", () => act("/feedback", { verdict: "true_positive", note: note() }));
  $("#fp").addEventListener("click", () => act("/feedback", { verdict: "false_positive", note: note() }));
  $("#newnormal").addEventListener("click", () => act("/feedback", { verdict: "new_normal", note: note() }));
  if (apiKey) loadFleet();
  if (apiKey) loadAlerts();
  const wanted = new URL(window.location.href).searchParams.get("alert");
  if (apiKey && wanted) openAlert(wanted);
});
