// The fleet overview at the top of the page: sensors alerting now and alerts opened per hour (GET /fleet), the
// serving model and when it was trained (GET /models). Texts from data are set with textContent.
"use strict";

function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1e3;
  if (!Number.isFinite(s)) return "";
  const abs = Math.abs(s), sign = s < 0 ? "in " : "";
  const text = abs < 90 ? Math.round(abs) + " s" : abs < 5400 ? Math.round(abs / 60) + " min"
    : abs < 172800 ? Math.round(abs / 3600) + " h" : Math.round(abs / 86400) + " d";
  return s < 0 ? sign + text : text + " ago";
}

const utcMinute = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "-");

async function loadFleet() {
  $("#fleet").hidden = false;
  const [fleet, models] = await Promise.allSettled([api("/fleet"), api("/models")]);
  if (fleet.status === "fulfilled") renderFleet(fleet.value);
  else $("#fleet-count").textContent = fleet.reason.message;
  renderModel(models.status === "fulfilled" ? models.value : { problem: models.reason.message });
}

function renderFleet(f) {
  const n = f.alerting.length;
  $("#fleet-count").textContent = n === 0 ? "no sensor is alerting" : n + " of " + f.sensors + " sensors alerting";
  $("#fleet-count").className = n ? "alerting" : "calm";
  const list = $("#fleet-alerting");
  list.replaceChildren();
  for (const s of f.alerting) {
    const item = el("li", { "data-sensor": s.sensor_id, "data-alert": s.alert_id, title: "open alert " + s.alert_id });
    item.append(el("span", { class: "chip sev-" + s.severity }, s.severity), el("b", {}, s.sensor_id),
      el("span", { class: "muted" }, " since " + utcMinute(s.opened_at) +
        (s.open_alerts > 1 ? " (" + s.open_alerts + " alerts)" : "") + (s.status === "acknowledged" ? ", acknowledged" : "")));
    item.addEventListener("click", () => openAlert(s.alert_id));
    list.appendChild(item);
  }
  const total = f.per_hour.reduce((sum, h) => sum + h.opened, 0);
  const end = f.until_source === "latest_event" ? "to the latest event" : f.until_source === "now" ? "to now" : "to the time asked";
  $("#fleet-span").textContent = total + " opened in the " + f.per_hour.length + " h " + end + " (" + utcMinute(f.until) + ")";
  const stale = f.latest_event && Date.now() - Date.parse(f.latest_event) > 15 * 60e3;
  $("#fleet-latest").textContent = f.latest_event ? "latest event " + utcMinute(f.latest_event) + ", " + ago(f.latest_event) : "no event scored yet";
  $("#fleet-latest").className = stale ? "stale" : "muted";
  drawFleetChart($("#fleet-chart"), f.per_hour);
}

function renderModel(m) {
  const facts = $("#model-facts");
  facts.replaceChildren();
  const add = (k, v, cls) => facts.append(el("dt", {}, k), el("dd", cls ? { class: cls } : {}, v));
  const s = m.serving;
  if (s) {
    add("version", s.version || "-");
    add("trained", utcMinute(s.created_at) + (s.created_at ? ", " + ago(s.created_at) : ""));
    add("source", s.source);
  } else add("serving", m.note || "no model serving", "problem");
  const reg = m.registry;
  if (reg && reg.shadow) add("shadow", reg.shadow.version);
  if (m.problem) add("problem", m.problem, "problem");
}
