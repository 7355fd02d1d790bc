// The alert page: plain DOM + SVG, no external code, works offline. Every text that comes from data is set
// with textContent (sensor ids and notes are untrusted).
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
const $ = (sel) => document.querySelector(sel);
let apiKey = null, nextCursor = null, current = null;
let shownQuery = null;  // the filter the listed rows (and nextCursor) belong to: "Load more" reuses it

function el(tag, attrs = {}, text = null) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
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
    if (!v) continue;
    params.set(k, (k === "since" || k === "until") ? v + ":00Z" : v);
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

function alertRow(a) {
  const tr = el("tr", { "data-id": a.id });
  const cells = [a.id, a.sensor_id, a.opened_at.replace("T", " ").slice(0, 19), a.status, a.severity,
    num(a.peak_score, 2) + " / " + num(a.threshold_at_peak, 2), a.window_count, (a.top_channels || []).join(", ")];
  cells.forEach((c, i) => tr.appendChild(el("td", i === 3 ? { class: a.status } : i === 4 ? { class: a.severity } : {}, String(c))));
  tr.addEventListener("click", () => openAlert(a.id));
  return tr;
}

async function openAlert(id) {
  document.querySelectorAll("#alerts tbody tr").forEach((r) => r.classList.toggle("sel", r.dataset.id === String(id)));
  $("#detail").hidden = false;
  $("#title").textContent = "Alert " + id + " (loading context...)";
  $("#charts").replaceChildren();
  try { render(await api("/alerts/" + id)); } catch (e) { $("#title").textContent = e.message; }
}

function render(a) {
  current = a;
  $("#title").textContent = "Alert " + a.id + ": " + a.sensor_id;
  const facts = $("#facts");
  facts.replaceChildren();
  const items = [["status", a.status], ["severity", a.severity], ["opened", a.opened_at], ["closed", a.closed_at || "-"],
    ["peak score", num(a.peak_score, 3)], ["threshold at peak", num(a.threshold_at_peak, 3)],
    ["windows", a.window_count], ["model", a.model_version], ["feedback", a.feedback ? a.feedback.verdict : "-"]];
  for (const [k, v] of items) {
    const span = el("span", { class: k === "status" || k === "severity" ? String(v) : "", id: "fact-" + k.replace(/ /g, "-") }, String(v));
    facts.append(el("b", {}, k + ": "), span, document.createTextNode("  "));
  }
  $("#ack").disabled = a.status !== "open";
  $("#resolve").disabled = a.status === "resolved";
  const ctx = a.context || { available: false, note: "context not requested", windows: [] };
  $("#contextnote").textContent = ctx.available ? (ctx.note === "ok" ? "" : ctx.note) : "no plot: " + ctx.note;
  const charts = $("#charts");
  charts.replaceChildren();
  if (ctx.windows.length) {
    const band = alertBand(ctx.windows);
    const span = [t(ctx.windows[0].window_start), t(ctx.windows[ctx.windows.length - 1].window_end)];
    const scored = ctx.windows.filter((w) => w.score !== null);
    if (scored.length) {
      charts.appendChild(chart("score (log scale) and threshold", "score", [
        { cls: "score", points: scored.map((w) => [t(w.window_end), Math.log10(w.score)]), dots: true },
        { cls: "threshold", points: scored.map((w) => [t(w.window_end), Math.log10(w.threshold)]) },
      ], band, span));
    }
    ctx.channels.forEach((name, c) => charts.appendChild(chart(name, "channel", [{ cls: "signal", points: signal(ctx.windows, c) }], band, span)));
  }
  const contrib = $("#contrib");
  contrib.replaceChildren();
  for (const [name, share] of Object.entries(ctx.contributions || {}).sort((x, y) => y[1] - x[1])) {
    const row = el("div", { class: "bar" });
    row.append(el("span", { style: "width:8em" }, name), el("span", { class: "fill", style: "width:" + Math.round(share * 300) + "px" }),
      el("span", {}, (share * 100).toFixed(1) + "%"));
    contrib.appendChild(row);
  }
  const events = $("#events");
  events.replaceChildren();
  for (const e of a.events) events.appendChild(el("li", {}, e.at + "  " + e.action + "  by " + e.actor + (e.note ? "  \u201c" + e.note + "\u201d" : "")));
}

const t = (iso) => Date.parse(iso);

function alertBand(windows) {
  const inside = windows.filter((w) => w.in_alert);
  return inside.length ? [t(inside[0].window_start), t(inside[inside.length - 1].window_end)] : null;
}

function signal(windows, c) {
  const byTime = new Map();  // overlapping windows repeat samples: keep one per time stamp
  for (const w of windows) {
    const t0 = t(w.window_start), t1 = t(w.window_end), n = w.values.length;
    w.values.forEach((row, i) => byTime.set(n > 1 ? t0 + (i * (t1 - t0)) / (n - 1) : t0, row[c]));
  }
  return [...byTime.entries()].sort((x, y) => x[0] - y[0]);
}

function chart(title, kind, series, band, span) {
  const W = 800, H = 150, L = 50, R = 10, T = 16, B = 18;
  const svg = el("svg:svg", { class: "chart", "data-kind": kind, viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const all = series.flatMap((s) => s.points);
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (band) { x0 = Math.min(x0, band[0]); x1 = Math.max(x1, band[1]); }
  if (span) { x0 = Math.min(x0, span[0]); x1 = Math.max(x1, span[1]); }  // every chart shares one time axis
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  if (band) svg.appendChild(el("svg:rect", { class: "band", x: X(band[0]), y: T, width: Math.max(1, X(band[1]) - X(band[0])), height: H - T - B }));
  svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.appendChild(el("svg:line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  svg.appendChild(el("svg:text", { x: L, y: 12 }, title));
  svg.appendChild(el("svg:text", { x: 2, y: T + 10 }, y1.toPrecision(3)));
  svg.appendChild(el("svg:text", { x: 2, y: H - B }, y0.toPrecision(3)));
  svg.appendChild(el("svg:text", { x: L, y: H - 4 }, new Date(x0).toISOString().slice(11, 19)));
  svg.appendChild(el("svg:text", { x: W - R - 50, y: H - 4 }, new Date(x1).toISOString().slice(11, 19)));
  for (const s of series) {
    const d = s.points.map((p, i) => (i ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1)).join(" ");
    svg.appendChild(el("svg:path", { class: s.cls, d }));
    if (s.dots) for (const p of s.points) svg.appendChild(el("svg:circle", { cx: X(p[0]), cy: Y(p[1]), r: 2 }));
  }
  return svg;
}

async function act(path, body) {
  if (!current) return;
  $("#actionmsg").textContent = "";
  try {
    const out = await api("/alerts/" + current.id + path, { method: "POST", body: JSON.stringify(body) });
    const alert = out.alert || out;
    render({ ...alert, context: current.context });
    $("#actionmsg").textContent = out.threshold_note ? "saved: " + out.threshold_note : "saved";
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
    initKey(); loadAlerts();
  });
  $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadAlerts(); });
  $("#more").addEventListener("click", () => loadAlerts(true));
  $("#ack").addEventListener("click", () => act("/acknowledge", { note: note() }));
  $("#resolve").addEventListener("click", () => act("/resolve", { note: note() }));
  $("#tp").addEventListener("click", () => act("/feedback", { verdict: "true_positive", note: note() }));
  $("#fp").addEventListener("click", () => act("/feedback", { verdict: "false_positive", note: note() }));
  if (apiKey) loadAlerts();
  const wanted = new URL(window.location.href).searchParams.get("alert");
  if (apiKey && wanted) openAlert(wanted);
});
