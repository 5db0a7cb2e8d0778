// hallmonitor web pages: review queue, camera wall and traffic counts.
// The API token never goes in a URL sent to the server: it is read once from the
// location fragment (#token=...) or the sign-in form, kept in sessionStorage and sent
// as an Authorization header. Data is rendered with textContent only (no HTML from
// the API is ever interpreted).
"use strict";

const KEY = "hallmonitor.token";
const $ = (id) => document.getElementById(id);

function takeTokenFromFragment() {
  const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function token() { return sessionStorage.getItem(KEY); }

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, opts.headers || {});
  const r = await fetch(path, Object.assign({}, opts, { headers }));
  if (r.status === 401) { sessionStorage.removeItem(KEY); showLogin(); throw new Error("signed out"); }
  return r;
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

function showLogin() {
  $("login").hidden = false;
  $("logout").hidden = true;
}

function el(tag, attrs = {}, text) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

async function loadImage(img, path) {
  try {
    const r = await api(path);
    if (!r.ok) { img.dataset.loaded = "missing"; return; }
    img.src = URL.createObjectURL(await r.blob());
    img.addEventListener("load", () => {
      img.dataset.loaded = "1";
      img.dataset.width = String(img.naturalWidth);
    }, { once: true });
  } catch (e) { img.dataset.loaded = "error"; }
}

// Sum of a {class: count} map.
const total = (o) => Object.values(o || {}).reduce((a, b) => a + b, 0);

function describe(ev) {
  const p = ev.payload || {};
  switch (ev.kind) {
    case "loitering": return `loitering in ${p.zone_id}: ${p.class_name} #${p.tracker_id}, ${Math.round(p.dwell_s)} s`;
    case "crowding": {
      const size = p.min_count ? `, group of ${p.min_count}+` : "";
      return `crowding in ${p.zone_id}: ${p.count} (max ${p.max_count}${size}) for ${Math.round(p.duration_s)} s`;
    }
    case "wrong_way": return `wrong way at ${p.line_id}: ${p.class_name}`;
    case "vehicle_flow":
      return `flow at ${p.line_id}: ${total(p.counts_in)} in, ${total(p.counts_out)} out`;
    case "camera_health": return `camera ${p.status}: ${p.message || ""}`;
    default: return ev.kind;
  }
}

const EVIDENCE = new Set(["loitering", "crowding", "wrong_way"]);

async function review(ev, action, note, row) {
  const r = await api(`/api/events/${ev.id}/review`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ action, note }),
  });
  if (!r.ok) { showError(`review failed: ${r.status}`); return; }
  const status = { acknowledge: "acknowledged", escalate: "escalated", dismiss: "dismissed" }[action];
  row.querySelector(".status").textContent = status;
  row.dataset.status = status;
}

async function renderReview() {
  const params = new URLSearchParams({ limit: "50" });
  if ($("kind").value) params.set("kind", $("kind").value);
  if ($("status").value) params.set("review_status", $("status").value);
  const r = await api("/api/events?" + params);
  if (!r.ok) { showError(`could not load events: ${r.status}`); return; }
  showError("");
  const page = await r.json();
  const body = document.querySelector("#events tbody");
  body.replaceChildren();
  $("count").textContent = `${page.items.length} event(s)`;
  for (const ev of page.items) {
    const row = el("tr", { "data-event-id": ev.id, "data-kind": ev.kind, "data-status": ev.review_status });
    const imgCell = el("td");
    if (EVIDENCE.has(ev.kind)) {
      const img = el("img", { alt: `snapshot of ${ev.kind} on ${ev.camera_id}` });
      imgCell.append(img);
      loadImage(img, `/api/events/${ev.id}/snapshot.jpg?boxes=true`);
    }
    row.append(imgCell,
      el("td", {}, new Date(ev.ts).toLocaleString()),
      el("td", {}, ev.camera_id),
      el("td", {}, describe(ev)),
      el("td", { class: "sev-" + ev.severity }, ev.severity),
      el("td", { class: "status" }, ev.review_status));
    const act = el("td");
    const note = el("input", { placeholder: "note", maxlength: "2000", "aria-label": "review note" });
    act.append(note);
    for (const a of ["acknowledge", "escalate", "dismiss"]) {
      const b = el("button", { type: "button", "data-action": a }, a);
      b.addEventListener("click", () => review(ev, a, note.value, row));
      act.append(b);
    }
    row.append(act);
    body.append(row);
  }
  document.body.dataset.ready = "1";
}

async function renderWall() {
  const r = await api("/api/cameras");
  if (!r.ok) { showError(`could not load cameras: ${r.status}`); return; }
  showError("");
  const cams = await r.json();
  const wall = $("wall");
  wall.replaceChildren();
  for (const c of cams) {
    const state = c.stale ? "offline" : c.state;
    const tile = el("article", { class: `tile ${state}`, "data-camera": c.camera_id, "data-state": state });
    tile.append(el("h2", {}, c.camera_id),
      el("p", { class: "state" }, `${state} · ${c.fps_in.toFixed(1)} fps in · ${c.fps_out.toFixed(1)} fps out · ${c.frames_dropped} dropped`),
      el("p", { class: "muted" }, c.last_frame_ts ? `last frame ${new Date(c.last_frame_ts).toLocaleTimeString()}` : "no frame yet"));
    if (c.message) tile.append(el("p", { class: "muted" }, c.message));
    const img = el("img", { alt: `latest event on ${c.camera_id}` });
    tile.append(img);
    wall.append(tile);
    const ev = await api(`/api/events?camera_id=${encodeURIComponent(c.camera_id)}&kind=loitering&limit=1`);
    const items = ev.ok ? (await ev.json()).items : [];
    if (items.length) loadImage(img, `/api/events/${items[0].id}/snapshot.jpg`);
    else img.dataset.loaded = "none";
  }
  document.body.dataset.ready = "1";
}

function trafficParams(format) {
  const days = Number($("days").value);
  const until = new Date();
  // Whole days from (browser-local) midnight, so the first day is not partial.
  const since = new Date(until.getFullYear(), until.getMonth(), until.getDate() - days + 1);
  const params = new URLSearchParams({
    since: since.toISOString(), until: until.toISOString(),
    bucket: $("bucket").value, tz: $("tz").value.trim() || "UTC",
  });
  if (format) params.set("format", format);
  return params;
}


async function renderTraffic() {
  const r = await api("/api/reports/traffic?" + trafficParams());
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    showError(`could not load traffic: ${body.error || r.status}`);
    return;
  }
  showError("");
  const rep = await r.json();
  const body = document.querySelector("#traffic tbody");
  body.replaceChildren();
  let sumIn = 0, sumOut = 0;
  for (const b of rep.buckets) {
    const n = total(b.counts_in), m = total(b.counts_out);
    sumIn += n; sumOut += m;
    const classes = new Set([...Object.keys(b.counts_in), ...Object.keys(b.counts_out)]);
    const by = [...classes].sort().map(
      (c) => `${c} ${b.counts_in[c] || 0}/${b.counts_out[c] || 0}`).join(", ");
    // The bucket start as the report's time zone gives it (its own offset).
    const from = b.bucket_start.replace("T", " ").slice(0, 16);
    const row = el("tr", { "data-camera": b.camera_id, "data-line": b.line_id });
    row.append(el("td", {}, from), el("td", {}, b.camera_id), el("td", {}, b.line_id),
      el("td", { class: "in" }, String(n)), el("td", { class: "out" }, String(m)), el("td", {}, by));
    body.append(row);
  }
  $("count").textContent = `${rep.buckets.length} bucket(s) · ${sumIn} in · ${sumOut} out (${rep.tz})`;
  document.body.dataset.ready = "1";
}

async function downloadTraffic() {
  const r = await api("/api/reports/traffic?" + trafficParams("csv"));
  if (!r.ok) { showError(`could not export: ${r.status}`); return; }
  const a = el("a", { download: "traffic.csv", href: URL.createObjectURL(await r.blob()) });
  document.body.append(a);
  a.click();
  a.remove();
}

async function start() {
  takeTokenFromFragment();
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY, $("token").value);
    location.reload();
  });
  $("logout").addEventListener("click", () => { sessionStorage.removeItem(KEY); location.reload(); });
  if (!token()) { showLogin(); return; }
  $("logout").hidden = false;
  const page = document.body.dataset.page;
  const render = { wall: renderWall, traffic: renderTraffic }[page] || renderReview;
  if (page === "review") {
    $("kind").addEventListener("change", render);
    $("status").addEventListener("change", render);
  }
  if (page === "traffic") {
    // Buckets start on local wall time: the browser's zone unless one is typed.
    $("tz").value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
    for (const id of ["days", "bucket", "tz"]) $(id).addEventListener("change", render);
    $("csv").addEventListener("click", () => downloadTraffic().catch((e) => showError(String(e.message || e))));
  }
  try { await render(); } catch (e) { showError(String(e.message || e)); }
  const every = { wall: 5000, traffic: 60000 }[page] || 15000;
  setInterval(() => render().catch((e) => showError(String(e.message || e))), every);
}

start();
