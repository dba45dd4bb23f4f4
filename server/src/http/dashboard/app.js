// The admin dashboard of license-server. Everything shown comes from the admin API and
// is put on the page as text (textContent), never as HTML: license, organisation and
// hardware ids are customer input. The admin token lives in this tab's sessionStorage
// and leaves it only as a bearer header.
"use strict";

const TOKEN_KEY = "lic4es-admin-token";
const REFRESH_MS = 2000;
const AUDIT_PAGE = 50;
// Rows a table shows at once: every poll asks for one page, whatever the fleet's size.
const TABLE_PAGE = 50;

let timer = null;
let auditLicense = "";
let auditPaged = false;

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthorized extends Error {}

// A table's place in a paged listing: the pages before it (to go back) and the cursor of
// the page after it (from the answer's Link header).
class Pager {
  constructor(path, prefix) {
    this.path = path;
    this.prefix = prefix;
    this.filter = {};
    this.cursors = [];
    this.next = null;
  }
  url() {
    const q = new URLSearchParams(this.filter);
    q.set("limit", String(TABLE_PAGE));
    const at = this.cursors[this.cursors.length - 1];
    if (at) q.set("cursor", at);
    return this.path + "?" + q.toString();
  }
  async load() {
    const [body, next] = await apiPage(this.url());
    this.next = next;
    $(this.prefix + "-next").hidden = !next;
    $(this.prefix + "-first").hidden = this.cursors.length === 0;
    $(this.prefix + "-page").textContent = "page " + (this.cursors.length + 1);
    return body;
  }
  forward() {
    if (this.next) this.cursors.push(this.next);
  }
  first() {
    this.cursors = [];
  }
}

// The cursor of the next page, from a Link header's rel="next" address.
function nextCursor(link) {
  const m = link && link.match(/<([^>]*)>\s*;\s*rel="next"/);
  if (!m) return null;
  return new URL(m[1], location.href).searchParams.get("cursor");
}

async function api(path) {
  return (await apiPage(path))[0];
}

// An admin API call that changes something: JSON in, JSON out, the server's message on a
// refusal.
async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  if (resp.status === 401) throw new Unauthorized("wrong admin token");
  let answer = null;
  try {
    answer = await resp.json();
  } catch (_) {
    answer = null;
  }
  if (!resp.ok) throw new Error(answer && answer.message ? answer.message : "HTTP " + resp.status);
  return answer;
}

// What a site pasted: its JSON as it is, else its one line.
function pasted(id) {
  const text = $(id).value.trim();
  if (!text) return null;
  try {
    const body = JSON.parse(text);
    if (typeof body === "object" && body !== null) return body;
  } catch (_) {
    // its one-line form
  }
  return { request: text };
}

const downloads = {};

// Shows a token handed back to a site: in its box, and as a file to download.
function handBack(prefix, token) {
  $(prefix + "-response").value = token;
  if (downloads[prefix]) URL.revokeObjectURL(downloads[prefix]);
  downloads[prefix] = URL.createObjectURL(new Blob([token + "\n"], { type: "application/jwt" }));
  $(prefix + "-download").href = downloads[prefix];
  $(prefix + "-answer").hidden = false;
}

// Answers a site's air-gapped activation request: the response to copy or download.
async function activate(ev) {
  ev.preventDefault();
  const body = pasted("activate-request");
  if (!body) return;
  $("activate-answer").hidden = true;
  try {
    const a = await post("/admin/offline-activations", body);
    handBack("activate", a.license);
    $("activate-result").className = "ok";
    $("activate-result").textContent = "Activation " + a.activation_id + " of " + a.license_id +
      " until " + time(a.expires_at) + (a.counted ? ", holding a seat" : ", not counted in seats");
    now();
  } catch (e) {
    if (e instanceof Unauthorized) return failed(e);
    $("activate-result").className = "error";
    $("activate-result").textContent = "Not answered: " + e.message;
  }
}

// Answers an on-site relay's grant request: the grant to copy or download.
async function grantRelay(ev) {
  ev.preventDefault();
  const body = pasted("grant-request");
  if (!body) return;
  $("grant-answer").hidden = true;
  try {
    const g = await post("/admin/relay-grants", body);
    handBack("grant", g.grant);
    $("grant-result").className = "ok";
    $("grant-result").textContent = "Grant " + g.grant_id + " of " + g.seats + " seats of " +
      g.license_id + " until " + time(g.expires_at) +
      (g.counted ? ", its seats held" : ", not counted in seats");
    now();
  } catch (e) {
    if (e instanceof Unauthorized) return failed(e);
    $("grant-result").className = "error";
    $("grant-result").textContent = "Not granted: " + e.message;
  }
}

// Enters a site's deactivation code: the activation's seat is freed.
async function deactivate(ev) {
  ev.preventDefault();
  const code = $("deactivate-code").value.trim();
  if (!code) return;
  try {
    const d = await post("/admin/offline-deactivations", { code });
    $("deactivate-result").className = "ok";
    $("deactivate-result").textContent = "Activation " + d.activation_id + " of " +
      d.license_id + " deactivated; its seat is free";
    $("deactivate-code").value = "";
    now();
  } catch (e) {
    if (e instanceof Unauthorized) return failed(e);
    $("deactivate-result").className = "error";
    $("deactivate-result").textContent = "Not taken: " + e.message;
  }
}

async function apiPage(path) {
  const resp = await fetch(path, {
    headers: { Authorization: "Bearer " + token() },
    cache: "no-store",
    credentials: "omit",
  });
  if (resp.status === 401) {
    throw new Unauthorized("wrong admin token");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch (_) {
    body = null;
  }
  if (!resp.ok) {
    const why = body && body.message ? body.message : "HTTP " + resp.status;
    throw new Error(why);
  }
  return [body, nextCursor(resp.headers.get("Link"))];
}

const pagers = {
  seats: new Pager("/admin/seats", "seats"),
  sessions: new Pager("/admin/sessions", "sessions"),
  abuse: new Pager("/admin/abuse", "abuse"),
};

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fill(tableId, rows, render, empty) {
  const body = $(tableId).tBodies[0];
  const trs = rows.map((r) => {
    const tr = document.createElement("tr");
    render(tr, r);
    return tr;
  });
  if (trs.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, empty, "muted");
    td.colSpan = $(tableId).tHead.rows[0].cells.length;
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

function duration(secs) {
  if (secs === null || secs === undefined) return "-";
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  if (d > 0) return d + "d " + h + "h";
  if (h > 0) return h + "h " + m + "m";
  return m + "m " + (secs % 60) + "s";
}

function time(rfc) {
  return rfc ? rfc.replace("T", " ").replace("Z", " UTC") : "-";
}

function renderSeats(seats) {
  fill("licenses", seats, (tr, l) => {
    cell(tr, l.license);
    cell(tr, l.org_name);
    cell(tr, l.tier);
    const use = cell(tr, l.in_use + " / " + (l.limit === null ? "?" : l.limit));
    if (l.limit && l.in_use / l.limit >= 0.9) use.className = "warn";
    cell(tr, l.offline);
  }, "no license holds a session");
}

function renderSummary(sum) {
  $("count-online").textContent = sum.online;
  $("count-offline").textContent = sum.offline;
  $("count-flagged").textContent = sum.flagged;
  $("count-licenses").textContent = sum.licenses;
}

function renderSessions(sessions) {
  fill("sessions", sessions, (tr, s) => {
    cell(tr, s.session_id, "mono");
    cell(tr, s.license);
    cell(tr, s.hardware_id, "mono");
    cell(tr, s.instance_id, "mono");
    cell(tr, s.mode, s.mode === "online" ? "ok" : "warn");
    cell(tr, time(s.last_seen));
    cell(tr, s.mode === "online" ? "-" : duration(s.offline_secs));
    cell(tr, s.mode === "online" ? "-" : duration(s.grace_left_secs));
  }, "no sessions");
}

function renderAbuse(report) {
  $("abuse-rule").textContent =
    "(flagged: more than " + report.max_cycles + " offline cycles and more than " +
    report.max_offline_days + " days offline in " + report.window_days + " days)";
  fill("abuse", report.licenses, (tr, l) => {
    cell(tr, l.license);
    cell(tr, l.cycles);
    cell(tr, l.offline_days);
    cell(tr, l.flagged ? "yes" : "no", l.flagged ? "error" : "");
    if (l.flagged) tr.className = "flagged";
  }, "no offline periods in the window");
}

function auditRow(tr, e) {
  tr.dataset.id = e.id;
  cell(tr, time(e.at));
  cell(tr, e.type);
  cell(tr, e.license);
  cell(tr, e.session_id, "mono");
  cell(tr, e.hardware_id, "mono");
  cell(tr, e.instance_id, "mono");
  cell(tr, e.source);
  cell(tr, e.detail);
}

function auditPath(before) {
  let q = "limit=" + AUDIT_PAGE;
  if (auditLicense) q += "&license=" + encodeURIComponent(auditLicense);
  if (before !== undefined) q += "&before=" + encodeURIComponent(before);
  return "/admin/audit?" + q;
}

function renderAudit(entries) {
  fill("audit", entries, auditRow, "no entries");
  $("audit-older").hidden = entries.length < AUDIT_PAGE;
}

async function older() {
  const rows = $("audit").tBodies[0].rows;
  const last = rows[rows.length - 1];
  if (!last || !last.dataset.id) return;
  try {
    const entries = await api(auditPath(last.dataset.id));
    auditPaged = true;
    for (const e of entries) {
      const tr = document.createElement("tr");
      auditRow(tr, e);
      $("audit").tBodies[0].appendChild(tr);
    }
    $("audit-older").hidden = entries.length < AUDIT_PAGE;
  } catch (e) {
    failed(e);
  }
}

function failed(e) {
  if (e instanceof Unauthorized) {
    signOut("The admin token was refused; sign in again.");
    return;
  }
  $("banner").textContent = "Could not reach the admin API: " + e.message + " (retrying)";
  $("banner").hidden = false;
}

async function refresh() {
  timer = null;
  if (!token()) return;
  try {
    const [summary, seats, sessions, abuse] = await Promise.all([
      api("/admin/summary"),
      pagers.seats.load(),
      pagers.sessions.load(),
      pagers.abuse.load(),
    ]);
    renderSummary(summary);
    renderSeats(seats);
    renderSessions(sessions);
    renderAbuse(abuse);
    if (!auditPaged) renderAudit(await api(auditPath()));
    $("banner").hidden = true;
    $("state").textContent = "Updated " + new Date().toLocaleTimeString() + " (live)";
  } catch (e) {
    failed(e);
    if (!token()) return;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function show(signedIn) {
  $("login-form").hidden = signedIn;
  $("dashboard").hidden = !signedIn;
  $("logout").hidden = !signedIn;
  if (!signedIn) $("state").textContent = "";
}

async function signIn(ev) {
  ev.preventDefault();
  const given = $("token").value.trim();
  if (!given) return;
  sessionStorage.setItem(TOKEN_KEY, given);
  $("token").value = "";
  try {
    await api("/admin/summary");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent =
      e instanceof Unauthorized ? "Wrong admin token." : "Sign-in failed: " + e.message;
    return;
  }
  $("login-error").textContent = "";
  show(true);
  refresh();
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearTimeout(timer);
  timer = null;
  show(false);
  // What was answered stays with who signed in.
  for (const id of ["activate-request", "activate-response", "deactivate-code",
    "grant-request", "grant-response"]) $(id).value = "";
  for (const id of ["activate-result", "deactivate-result", "grant-result"]) {
    $(id).textContent = "";
  }
  $("activate-answer").hidden = true;
  $("grant-answer").hidden = true;
  $("login-error").textContent = typeof why === "string" ? why : "";
}

const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A license's seat usage over the last 30 days, by day, drawn here as SVG: the daily
// peak (points and line), the mean (line) and the license's seats (dashed line).
function drawUsage(r) {
  const W = 720, H = 240, L = 40, R = 16, T = 16, B = 28;
  const rows = r.rows;
  const limit = typeof r.limit === "number" ? r.limit : null;
  const top = Math.max(1, limit || 0, ...rows.map((x) => x.peak));
  const x = (i) => L + (rows.length <= 1 ? 0 : (i * (W - L - R)) / (rows.length - 1));
  const y = (v) => H - B - (v * (H - T - B)) / top;
  const svg = svgEl("svg", {
    viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
    "aria-label": "Seat usage of " + r.license + " by day",
  });
  svg.appendChild(svgEl("line", { x1: L, y1: y(0), x2: W - R, y2: y(0), class: "axis" }));
  svg.appendChild(svgEl("line", { x1: L, y1: y(top), x2: L, y2: y(0), class: "axis" }));
  svg.appendChild(svgEl("text", { x: L - 6, y: y(top) + 4, "text-anchor": "end" }, String(top)));
  svg.appendChild(svgEl("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, "0"));
  if (rows.length > 0) {
    svg.appendChild(svgEl("text", { x: L, y: H - 8 }, rows[0].start.slice(0, 10)));
    svg.appendChild(svgEl("text", { x: W - R, y: H - 8, "text-anchor": "end" },
      rows[rows.length - 1].start.slice(0, 10)));
  }
  if (limit !== null) {
    svg.appendChild(svgEl("line", { x1: L, y1: y(limit), x2: W - R, y2: y(limit),
      class: "limit", id: "usage-limit", "data-value": limit }));
    svg.appendChild(svgEl("text", { x: W - R, y: y(limit) - 4, "text-anchor": "end" },
      "seats " + limit));
  }
  const line = (key, cls) => svgEl("polyline", {
    class: cls, fill: "none",
    points: rows.map((row, i) => x(i) + "," + y(row[key])).join(" "),
  });
  svg.appendChild(line("mean", "mean"));
  svg.appendChild(line("peak", "peak"));
  let max = -1;
  rows.forEach((row, i) => { if (max < 0 || row.peak > rows[max].peak) max = i; });
  rows.forEach((row, i) => {
    const dot = svgEl("circle", { cx: x(i), cy: y(row.peak), r: i === max ? 4 : 2.5,
      class: i === max ? "peak-max" : "peak-point",
      "data-day": row.start.slice(0, 10), "data-value": row.peak });
    dot.appendChild(svgEl("title", {}, row.start.slice(0, 10) + ": peak " + row.peak +
      ", mean " + row.mean + ", refusals " + row.refusals + ", offline hours " +
      row.offline_hours));
    if (i === max) dot.id = "usage-peak";
    svg.appendChild(dot);
  });
  $("usage-chart").replaceChildren(svg);
  const refusals = rows.reduce((n, row) => n + row.refusals, 0);
  const offline = rows.reduce((n, row) => n + row.offline_hours, 0);
  $("usage-summary").textContent = rows.length === 0 ? "no usage" :
    "peak " + rows[max].peak + " on " + rows[max].start.slice(0, 10) + "; " + refusals +
    " refusals; " + offline.toFixed(2) + " offline session-hours";
}

function showUsage(ev) {
  ev.preventDefault();
  const license = $("usage-license").value.trim();
  if (!license) return;
  api("/admin/usage?bucket=day&license=" + encodeURIComponent(license)).then(drawUsage, failed);
}

// Shows the tables again at once (a page turned), not at the next poll.
function now() {
  if (timer) clearTimeout(timer);
  refresh();
}

function filterAudit(ev) {
  ev.preventDefault();
  auditLicense = $("audit-license").value.trim();
  auditPaged = false;
  api(auditPath()).then(renderAudit, failed);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("logout").addEventListener("click", () => signOut());
  $("audit-filter").addEventListener("submit", filterAudit);
  $("usage-form").addEventListener("submit", showUsage);
  $("activate-form").addEventListener("submit", activate);
  $("deactivate-form").addEventListener("submit", deactivate);
  $("grant-form").addEventListener("submit", grantRelay);
  $("audit-older").addEventListener("click", older);
  for (const [name, pager] of Object.entries(pagers)) {
    $(name + "-next").addEventListener("click", () => {
      pager.forward();
      now();
    });
    $(name + "-first").addEventListener("click", () => {
      pager.first();
      now();
    });
  }
  $("sessions-state").addEventListener("change", () => {
    const st = $("sessions-state").value;
    pagers.sessions.filter = st ? { state: st } : {};
    pagers.sessions.first();
    now();
  });
  if (token()) {
    show(true);
    refresh();
  } else {
    show(false);
  }
});
