// The page's plots, drawn with uPlot (vendored: vendor/uPlot.iife.min.js, see vendor/VENDORED.md). Times are
// plotted in seconds and labelled in UTC, with the date under the first tick and wherever the day changes.
// Every uPlot instance the page draws is kept in window.monitorPlots (the browser tests read what was plotted).
"use strict";

window.monitorPlots = { score: null, channels: [], fleet: null };
const UTC_DATE = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
const BAND_FILL = "rgba(255, 82, 82, 0.16)";

const isoAt = (ts) => new Date(ts * 1e3).toISOString();
const utcText = (ts) => isoAt(ts).slice(0, 19).replace("T", " ");  // 2026-01-01 00:05:00

// Tick labels of a time axis: the time, and the date under the first tick and under every tick on a new day.
function timeTicks(u, splits, axisIdx, space, incr) {
  let day = null;
  return splits.map((s) => {
    if (s == null) return null;
    const iso = isoAt(s);
    const time = incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
    const label = iso.slice(0, 10) === day ? time : time + "\n" + iso.slice(0, 10);
    day = iso.slice(0, 10);
    return label;
  });
}

function fmtValue(v) {
  if (v == null) return "--";
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 1 ? v.toPrecision(4) : v.toPrecision(3);
}

const tickText = (v) => (v == null ? "" : String(+v.toPrecision(4)));  // 100, 10, 1, 0.5: no trailing zeros
const timeSeries = () => ({ label: "time (UTC)", value: (u, v) => (v == null ? "--" : utcText(v)) });
const timeAxis = () => ({ values: timeTicks, space: 80, size: 44, label: "time (UTC)", labelSize: 18 });

// Points (x seconds, y) sorted by x with a null point wherever the step is more than twice the usual one: uPlot
// (spanGaps false) then draws a gap instead of a straight line across missing data.
function withGaps(points) {
  const xs = [], ys = [];
  const steps = points.slice(1).map((p, i) => p[0] - points[i][0]).filter((d) => d > 0).sort((a, b) => a - b);
  const usual = steps.length ? steps[Math.floor(steps.length / 2)] : Infinity;
  points.forEach((p, i) => {
    if (i > 0 && p[0] - points[i - 1][0] > 2 * usual) { xs.push((p[0] + points[i - 1][0]) / 2); ys.push(null); }
    xs.push(p[0]); ys.push(p[1]);
  });
  return [xs, ys];
}

// Draws a plot into a new panel of `container`, sized to its width (and again when that changes).
function panel(container, kind, title, opts, data) {
  const box = document.createElement("div");
  box.className = "plot";
  box.dataset.kind = kind;
  const head = document.createElement("div");
  head.className = "plot-title";
  head.append(...title);
  box.appendChild(head);
  container.appendChild(box);
  const u = new uPlot({ ...opts, width: Math.max(280, box.clientWidth) }, data, box);
  new ResizeObserver(() => {
    const width = Math.max(280, box.clientWidth);
    if (Math.abs(width - u.width) > 2) u.setSize({ width, height: u.height });
  }).observe(box);
  return [box, u];
}

function span(text, cls) {
  const s = document.createElement("span");
  if (cls) s.className = cls;
  s.textContent = text;
  return s;
}

// The alert span shaded under the series of every time-aligned panel.
function bandHook(band) {
  return (u) => {
    if (!band) return;
    const x0 = Math.max(u.bbox.left, u.valToPos(band[0], "x", true));
    const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(band[1], "x", true));
    if (x1 <= x0) return;
    u.ctx.save();
    u.ctx.fillStyle = BAND_FILL;
    u.ctx.fillRect(x0, u.bbox.top, Math.max(1, x1 - x0), u.bbox.height);
    u.ctx.restore();
  };
}

function sharedOpts(syncKey, range, band, height) {
  return {
    height,
    cursor: { sync: { key: syncKey }, drag: { x: false, y: false } },  // one time axis for all: no zooming one panel
    scales: { x: { time: true, range: () => range } },
    tzDate: UTC_DATE,
    hooks: { drawClear: [bandHook(band)] },
  };
}

// The alert's panels: score and threshold (log axis), then one panel per channel, the alert's top channels
// first. `ctx` is the alert context from GET /alerts/{id}; times are the windows' ends (decisions) and the
// samples' own times (values). Returns the uPlot instances.
function drawAlertPlots(container, alert, ctx) {
  clearAlertPlots();
  const t = (iso) => Date.parse(iso) / 1e3;
  const windows = ctx.windows;
  const inside = windows.filter((w) => w.in_alert);
  const band = inside.length ? [t(inside[0].window_start), t(inside[inside.length - 1].window_end)] : null;
  const range = [Math.min(...windows.map((w) => t(w.window_start))), Math.max(...windows.map((w) => t(w.window_end)))];
  if (range[1] <= range[0]) range[1] = range[0] + 1;
  const syncKey = "alert-" + alert.id;
  const decided = windows.filter((w) => w.score !== null || w.threshold !== null);
  if (decided.length) {
    const positive = (v) => (typeof v === "number" && v > 0 ? v : null);  // a log axis has no place for <= 0
    const [xs, scores] = withGaps(decided.map((w) => [t(w.window_end), positive(w.score)]));
    const [, thresholds] = withGaps(decided.map((w) => [t(w.window_end), positive(w.threshold)]));
    const firing = (w) => w.in_alert && w.score !== null && w.threshold !== null && w.score > w.threshold;
    const [, fired] = withGaps(decided.map((w) => [t(w.window_end), firing(w) ? positive(w.score) : null]));
    const base = sharedOpts(syncKey, range, band, 240);
    const opts = {
      ...base,
      scales: { ...base.scales, y: { distr: 3 } },
      series: [
        timeSeries(),
        { label: "score", stroke: "#6a1b9a", width: 1.5, spanGaps: false, value: (u, v) => fmtValue(v),
          points: { show: true, size: 4 } },
        { label: "threshold", stroke: "#d32f2f", width: 1.5, dash: [6, 4], spanGaps: false,
          value: (u, v) => fmtValue(v), points: { show: false } },
        { label: "above threshold in the alert", stroke: "#b00020", fill: "#b00020", width: 0, paths: () => null,
          points: { show: true, size: 7, fill: "#b00020" }, value: (u, v) => (v == null ? "--" : fmtValue(v)) },
      ],
      axes: [timeAxis(), { label: "score (log scale)", labelSize: 18, size: 60, values: (u, vals) => vals.map(tickText) }],
    };
    const [box, u] = panel(container, "score", [span("Score and threshold as decided", "name"),
      span(" (one point per window, at its end; log scale)", "muted")], opts, [xs, scores, thresholds, fired]);
    if (band) box.dataset.band = band.join(",");
    window.monitorPlots.score = u;
  }
  if (windows.some((w) => w.values)) {
    const top = alert.top_channels || [];
    const order = ctx.channels.map((name, c) => c)
      .sort((a, b) => rankOf(top, ctx.channels[a]) - rankOf(top, ctx.channels[b]) || a - b);
    for (const c of order) {
      const name = ctx.channels[c];
      const rank = top.indexOf(name);
      const share = (ctx.contributions || {})[name];
      const title = [span(name, "name")];
      if (rank >= 0) title.push(span("top channel #" + (rank + 1), "badge"));
      if (typeof share === "number") title.push(span(" " + (share * 100).toFixed(1) + " % of the alert's error", "muted"));
      const [xs, ys] = withGaps(samples(windows, c));
      const opts = {
        ...sharedOpts(syncKey, range, band, rank >= 0 ? 150 : 110),
        series: [timeSeries(), { label: name, stroke: rank >= 0 ? "#c2185b" : "#1f5fa8", width: rank >= 0 ? 2 : 1.2,
          spanGaps: false, value: (u, v) => fmtValue(v), points: { show: false } }],
        axes: [timeAxis(), { label: "value", labelSize: 18, size: 60, values: (u, vals) => vals.map(tickText) }],
      };
      const [box, u] = panel(container, "channel", title, opts, [xs, ys]);
      box.dataset.channel = name;
      if (rank >= 0) box.classList.add("top");
      if (band) box.dataset.band = band.join(",");
      window.monitorPlots.channels.push(u);
    }
  }
  return window.monitorPlots;
}

const rankOf = (top, name) => (top.includes(name) ? top.indexOf(name) : top.length);

// One (time, value) per sample of channel c: a window of n samples spans [window_start, window_end]; overlapping
// windows repeat samples, so one value per time stamp is kept. Windows without values (records Kafka no longer
// has) leave a gap.
function samples(windows, c) {
  const t = (iso) => Date.parse(iso) / 1e3;
  const byTime = new Map();
  for (const w of windows) {
    if (!w.values) continue;
    const t0 = t(w.window_start), t1 = t(w.window_end), n = w.values.length;
    w.values.forEach((row, i) => byTime.set(n > 1 ? t0 + (i * (t1 - t0)) / (n - 1) : t0, row[c]));
  }
  return [...byTime.entries()].sort((x, y) => x[0] - y[0]);
}

function clearAlertPlots() {
  if (window.monitorPlots.score) window.monitorPlots.score.destroy();
  window.monitorPlots.channels.forEach((u) => u.destroy());
  window.monitorPlots.score = null;
  window.monitorPlots.channels = [];
}

// Alerts opened per hour (GET /fleet's per_hour) as bars, one per hour.
function drawFleetChart(container, perHour) {
  if (window.monitorPlots.fleet) window.monitorPlots.fleet.destroy();
  container.replaceChildren();
  const xs = perHour.map((h) => Date.parse(h.hour) / 1e3 + 1800);  // the middle of the hour
  const opts = {
    height: 130,
    cursor: { drag: { x: false, y: false } },
    tzDate: UTC_DATE,
    scales: { x: { time: true, range: () => [xs[0] - 1800, xs[xs.length - 1] + 1800] },
      y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    series: [
      { label: "hour (UTC)", value: (u, v) => (v == null ? "--" : utcText(v - 1800).slice(0, 16) + " +1 h") },
      { label: "alerts opened", stroke: "#c25e00", fill: "rgba(194, 94, 0, 0.45)", width: 1,
        paths: uPlot.paths.bars({ size: [0.8, 40] }), points: { show: false } },
    ],
    axes: [timeAxis(), { label: "alerts / hour", labelSize: 18, size: 44,
      values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? String(v) : "")) }],
  };
  const [, u] = panel(container, "fleet", [], opts, [xs, perHour.map((h) => h.opened)]);
  window.monitorPlots.fleet = u;
  return u;
}
