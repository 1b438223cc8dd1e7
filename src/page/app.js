// The staff page: find a box, open its aisle, watch the ranges, take stock.
//
// Plain modules, no framework. Everything the page shows comes from the API with the
// signed-in token; live range states and operations come from the event stream. Text from
// the server (titles, names) is only ever set as text, never as HTML.

import { drawChart } from "/assets/chart.js";
import { drawRoom, parseShelf } from "/assets/map.js";

const $ = (id) => document.getElementById(id);
// Where earlier versions kept the token; cleared, the session cookie keeps the sign-in now.
const TOKEN_KEY = "stackroom.token";
const LANG_KEY = "stackroom.lang";
const FINAL = ["done", "refused", "failed", "stopped"];
const REASONS = [
  "aisle_occupied", "obstacle", "estop", "fault", "locked", "link_down",
  "state_unknown", "moving", "no_such_aisle", "room_alarm", "stopping", "busy",
  "not_sent", "not_confirmed", "halted", "expired", "recently_occupied",
  "unexpected_motion", "watchdog", "timeout", "not_started", "stop", "superseded",
];

const state = {
  token: null,
  me: null,
  room: null,
  i18n: null,
  lang: "en",
  ranges: new Map(), // range id -> its latest state
  ops: new Map(), // operation id -> its latest view
  focus: null, // the box shown
  watching: null, // {op, range, aisle}: the opening the page asked for
  asking: false, // an Open aisle request is on its way
  events: null,
  sweep: null,
  sweepTimer: null,
  drawQueued: false,
  sensors: new Map(), // environment point id -> its latest view
  zones: [], // environment zones with their limits
  alarms: new Map(), // open environment alarms by id
  envTimer: null,
  span: "day", // the environment charts: "day" or "month"
};

// ---------------------------------------------------------------- labels

function t(key, params = {}) {
  const dict = state.i18n[state.lang] || {};
  let text = dict[key] ?? state.i18n.en[key] ?? key;
  for (const [k, v] of Object.entries(params)) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

function setLanguage(lang) {
  state.lang = state.i18n[lang] ? lang : "en";
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  $("lang").value = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  if (state.room) {
    renderRoomName();
    buildRangeCards();
    buildSweepScopes();
    buildSearchRanges();
    showLoanLimits();
    if (state.focus) showBox(state.focus);
    // The motion line in the new language (`showBox` keeps what it watches).
    const watched = state.watching && state.ops.get(state.watching.op);
    if (watched) showMotion(watched);
    else if ($("motion").dataset.state === "unknown") setMotion("unknown", t("motion_unknown"));
    if (state.sweep) showSweep(state.sweep);
    if ($("search").value.trim()) runSearch($("search").value);
    if (!$("tab-loans").hidden) loadLoans();
    // The zones' names, charts' dates and alarms in the new language.
    renderEnvironment(true);
    draw();
  }
  if (state.me) renderWho();
}

/// A name from the config, in the page's language: one text, or `{ zh, en }`.
function named(name) {
  if (name === null || typeof name !== "object") return name ?? "";
  return name[state.lang] ?? name.en ?? name.zh ?? "";
}

function rangeName(id) {
  const r = state.room && state.room.ranges.find((x) => x.id === id);
  return r ? named(r.name) : String(id);
}

/// A shelf in words, in the page's language.
function shelfWords(shelf) {
  if (!shelf) return "";
  return t("shelf_words", {
    range: rangeName(shelf.range),
    carriage: String(shelf.carriage).padStart(2, "0"),
    face: t(`face_${shelf.face}`),
    section: shelf.section,
    level: shelf.level,
  });
}

function addressWords(address) {
  const shelf = parseShelf(address);
  return shelf ? shelfWords(shelf) : address || "";
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB");
}

/// Why a motion was refused or ended, in plain words.
function why(reason, range, fallback) {
  const r = state.ranges.get(range);
  const params = { range: rangeName(range) };
  if (reason === "aisle_occupied") {
    const aisles = r ? r.occupied_aisles : [];
    if (aisles.length > 0) return t("why_aisle_occupied", { ...params, aisles: aisles.join(", ") });
    return t("why_aisle_occupied_any", params);
  }
  if (reason === "fault") {
    return t("why_fault", { ...params, faults: r && r.faults.length ? r.faults.join(", ") : "?" });
  }
  if (REASONS.includes(reason)) return t(`why_${reason}`, params);
  return fallback || t("why_other");
}

// ---------------------------------------------------------------- the API

// Why the token no longer opens anything, in words: expired (and when) or not valid.
function tokenTrouble(problem) {
  return problem && problem.type === "urn:stackroom:token-expired"
    ? t("err_token_expired", { at: when(problem.params && problem.params.at) })
    : t("err_token");
}

// The words of a state named in a problem, by the problem's kind.
const PROBLEM_STATES = {
  "loan-state": "loan_state_",
  "box-on-loan": "loan_state_",
  "disposal-state": "disposal_state_",
  "transfer-state": "transfer_state_",
  "alarm-not-active": "alarm_state_",
  "sweep-not-running": "sweep_state_",
};

function known(key) {
  return key in (state.i18n[state.lang] || {}) || key in state.i18n.en;
}

/// A problem the API answered, in the reader's words: the catalogue's text for its kind
/// (or for the rule a field broke), filled in with the problem's params. The API's English
/// `detail` is shown only for a kind this page does not know.
function problemText(status, problem) {
  const kind = (problem.type || "").replace("urn:stackroom:", "");
  const p = problem.params || {};
  const word = (prefix, value) => (value && known(prefix + value) ? t(prefix + value) : value);
  const field = problem.field ? problem.field.replaceAll(".", "_") : "";
  const params = {
    ...Object.fromEntries(Object.entries(p).map(([k, v]) => [k, named(v)])),
    field: word("field_", field) || "",
    role: word("role_", p.role),
    need: word("role_", p.need),
  };
  const states = PROBLEM_STATES[kind];
  if (states) {
    params.state = word(states, p.state);
    params.wanted = word(states, p.wanted);
  }
  if (kind === "refused" || kind === "no-such-aisle") return why(problem.reason, p.range, t(`problem_${kind}`));
  if (p.rule && known(`rule_${p.rule}`)) return t(`rule_${p.rule}`, params);
  if (problem.reason && known(`problem_${kind}_${problem.reason}`)) return t(`problem_${kind}_${problem.reason}`, params);
  if (kind && known(`problem_${kind}`)) return t(`problem_${kind}`, params);
  return problem.detail || `HTTP ${status}`;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body, { signal, raw } = {}) {
  // Signed in by the session cookie; the token itself only while signing in. The header
  // tells the API this is the page and not a form from another site.
  const headers = { "X-Requested-With": "stackroom" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  // The lookup register keeps why a box was looked up, as the person said it.
  const purpose = $("purpose") ? $("purpose").value.trim() : "";
  if (purpose && method === "GET") headers["X-Purpose"] = encodeURIComponent(purpose);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { detail: t("err_network") });
  }
  if (!response.ok) {
    let problem = {};
    try {
      problem = await response.json();
    } catch {
      problem = {};
    }
    if (response.status === 401) signOut(tokenTrouble(problem));
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// ---------------------------------------------------------------- signing in

function showSignIn(message) {
  $("app").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("token").focus();
}

/// Signs in with `token`, or without one by the session cookie of an earlier sign-in (in
/// this tab or another). A token opens a session and is then forgotten: the page keeps no
/// secret, the HttpOnly cookie does.
async function signIn(token) {
  state.token = token || null;
  try {
    state.me = await api("GET", "/api/v1/me");
    state.room = await api("GET", "/api/v1/room");
    if (token) await api("POST", "/api/v1/session");
  } catch (e) {
    state.token = null;
    state.me = null;
    if (!token && e.status === 401) showSignIn("");
    else showSignIn(e.status === 401 ? tokenTrouble(e.problem) : e.message);
    return;
  }
  state.token = null;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  if (!localStorage.getItem(LANG_KEY)) state.lang = state.room.language;
  setLanguage(state.lang);
  applyRole();
  connectEvents();
  loadEnvironment();
  showTab("find");
  $("search").focus();
}

/// Back to the sign-in form; `everywhere` also ends the session (the sign-out button), so
/// every tab of this browser is signed out.
function signOut(message, everywhere = false) {
  if (everywhere) {
    fetch("/api/v1/session", { method: "DELETE", headers: { "X-Requested-With": "stackroom" } }).catch(() => {});
  }
  if (state.events) state.events.close();
  clearTimeout(state.sweepTimer);
  clearTimeout(state.envTimer);
  state.sensors.clear();
  state.alarms.clear();
  Object.assign(state, { token: null, me: null, events: null, focus: null, watching: null, sweep: null });
  state.ranges.clear();
  showSignIn(message);
}

function renderWho() {
  $("who").hidden = false;
  $("who-name").textContent = state.me.name;
  $("who-role").textContent = t(`role_${state.me.role}`);
}

function renderRoomName() {
  $("room-name").textContent = named(state.room.room_name);
  document.title = `stackroom · ${named(state.room.room_name)}`;
}

function may(action) {
  return state.me && state.me.may.includes(action);
}

/// Offers only what the role may do.
function applyRole() {
  for (const node of document.querySelectorAll("[data-may]")) {
    const allowed = may(node.dataset.may);
    node.hidden = !allowed;
    if (node.tagName === "OPTION") node.disabled = !allowed;
  }
  // Lock or unlock, whichever the range needs.
  for (const view of state.ranges.values()) updateRangeCard(view);
  renderWho();
}

// ---------------------------------------------------------------- live events

async function connectEvents() {
  if (state.events) state.events.close();
  state.events = null;
  // The token stays out of URLs (and so out of logs): a one-time ticket opens the stream.
  let ticket;
  try {
    ticket = (await api("POST", "/api/v1/events/ticket")).ticket;
  } catch {
    $("link").hidden = false;
    setTimeout(() => state.me && !state.events && connectEvents(), 2000);
    return;
  }
  const source = new EventSource(`/api/v1/events?ticket=${encodeURIComponent(ticket)}`);
  state.events = source;
  source.addEventListener("range", (e) => onRange(JSON.parse(e.data).data));
  source.addEventListener("operation", (e) => onOperation(JSON.parse(e.data).data));
  source.addEventListener("sensor", (e) => onSensor(JSON.parse(e.data).data));
  source.addEventListener("alarm", (e) => onAlarm(JSON.parse(e.data).data));
  source.onopen = () => {
    $("link").hidden = true;
    // What the watched operation did while the page could not hear: ask once.
    if (state.watching) {
      api("GET", `/api/v1/operations/${encodeURIComponent(state.watching.op)}`)
        .then(onOperation)
        .catch((e) => {
          // The controller restarted and forgot it: say so rather than guess.
          if (e.status === 404) setMotion("unknown", t("motion_lost"));
        });
    }
  };
  source.onerror = () => {
    $("link").hidden = false;
    // Cut off from the controller, the page cannot say the aisle is open or moving.
    if (state.watching && $("motion").dataset.state !== "unknown") {
      setMotion("unknown", t("motion_unknown"));
    }
    if (source.readyState === EventSource.CLOSED && state.events === source) {
      // The server closed it for good (a revoked token, a restart): ask why, then retry.
      api("GET", "/api/v1/me")
        .then(() => setTimeout(() => state.events === source && connectEvents(), 2000))
        .catch(() => {});
    }
  };
}

function onRange(view) {
  state.ranges.set(view.range, view);
  refreshOpenButton();
  renderAlarms();
  updateRangeCard(view);
  draw();
}

const RANK = { queued: 0, moving: 1 };
function rank(op) {
  return RANK[op.state] ?? 2;
}

function onOperation(op) {
  const known = state.ops.get(op.id);
  if (known && rank(known) > rank(op)) return; // an older answer arriving late
  state.ops.set(op.id, op);
  if (state.ops.size > 500) state.ops.delete(state.ops.keys().next().value);
  if (state.watching && state.watching.op === op.id) showMotion(op);
  updateRangeOperation(op);
}

function draw() {
  if (state.drawQueued || !state.room) return;
  state.drawQueued = true;
  requestAnimationFrame(() => {
    state.drawQueued = false;
    const focus = state.focus && state.focus.location
      ? { ...state.focus.location.shelf, aisle: state.focus.location.aisle.aisle }
      : null;
    const room = { ...state.room, ranges: state.room.ranges.map((r) => ({ ...r, name: named(r.name) })) };
    drawRoom($("map"), room, state.ranges, focus, t, rangeClimate(), state.mapView);
    $("map").classList.toggle("zoomed", Boolean(state.mapView));
    drawFace();
  });
}

/// The whole room's size on the map, in mm (the drawn svg says it).
function mapSize() {
  const svg = $("map").querySelector("svg");
  return svg ? { w: +svg.dataset.width, h: +svg.dataset.height } : null;
}

/// Zooms the map by `factor` (below 1: closer) around the middle of what it shows.
function zoomMap(factor) {
  const size = mapSize();
  if (!size) return;
  const v = state.mapView || { x: 0, y: 0, ...size };
  const w = Math.min(size.w, Math.max(size.w / 8, v.w * factor));
  const h = (w / v.w) * v.h;
  state.mapView = w >= size.w ? null : { x: v.x + (v.w - w) / 2, y: v.y + (v.h - h) / 2, w, h };
  draw();
}

/// Drags the zoomed map.
function panMap() {
  let from = null;
  $("map").addEventListener("pointerdown", (e) => {
    if (state.mapView) from = { x: e.clientX, y: e.clientY, view: { ...state.mapView } };
  });
  $("map").addEventListener("pointermove", (e) => {
    if (!from) return;
    const mm = from.view.w / ($("map").clientWidth || 1);
    state.mapView = { ...from.view, x: from.view.x - (e.clientX - from.x) * mm, y: from.view.y - (e.clientY - from.y) * mm };
    draw();
  });
  for (const end of ["pointerup", "pointerleave", "pointercancel"]) $("map").addEventListener(end, () => { from = null; });
}

/// The chosen box's shelf section seen from its aisle: its levels, top to bottom, the
/// box's level marked.
function drawFace() {
  const loc = state.focus && state.focus.location;
  const range = loc && state.room.ranges.find((r) => r.id === loc.shelf.range);
  $("face").hidden = !range;
  if (!range) return;
  const levels = [];
  for (let level = range.levels; level >= 1; level--) {
    levels.push(node("li", { class: level === loc.shelf.level ? "here" : "", "data-level": level },
      t("face_level", { level }), level === loc.shelf.level ? ` — ${state.focus.archive_no}` : ""));
  }
  $("face").replaceChildren(
    node("p", { class: "face-title" }, t("face_title", {
      carriage: loc.shelf.carriage, face: t(`face_${loc.shelf.face}`), section: loc.shelf.section })),
    node("ol", { class: "face-levels" }, ...levels),
  );
}

/// An alarm in the reader's language, from its kind and its numbers (`params`); its
/// English message if it was raised before alarms kept their numbers.
function alarmText(a) {
  const p = a.params || {};
  const key = a.kind === "sensor_stale" && p.why !== undefined ? "alarm_text_sensor_stale_why" : `alarm_text_${a.kind}`;
  const words = {
    ...p,
    sensor: a.sensor,
    zone: zoneName(a.zone),
    range: p.range !== undefined ? rangeName(p.range) : undefined,
    op: p.op !== undefined ? t(`op_${p.op}`) : undefined,
  };
  const template = (state.i18n[state.lang] || {})[key];
  const needs = template ? [...template.matchAll(/\{([a-z_]+)\}/g)].map((m) => m[1]) : [];
  if (!template || needs.some((n) => words[n] === undefined)) return a.message;
  return t(key, words);
}

/// Emergency stops, faults, lost controllers and the room's alarms, loudly, above everything.
function renderAlarms() {
  const lines = [];
  const quiet = [];
  for (const a of [...state.alarms.values()].sort((x, y) => x.id - y.id)) {
    const text = t("alarm_env", { kind: t(`alarm_kind_${a.kind}`), sensor: a.sensor, zone: zoneName(a.zone) });
    if (a.state === "active" || a.kind === "smoke" || a.kind === "water") lines.push(text);
    else quiet.push(`${text} — ${t("alarm_acknowledged_by", { who: a.acked_by || "?" })}`);
  }
  for (const r of [...state.ranges.values()].sort((a, b) => a.range - b.range)) {
    const params = { range: rangeName(r.range) };
    if (r.estop) lines.push(t("alarm_estop", params));
    if (r.faults.length) lines.push(t("alarm_fault", { ...params, faults: r.faults.join(", ") }));
    if (r.link !== "up") lines.push(t("alarm_link", params));
    if (r.stop_pending) lines.push(t("alarm_stop_pending", params));
  }
  $("alarms").replaceChildren(
    ...lines.map((text) => node("p", { class: "alarm" }, text)),
    ...quiet.map((text) => node("p", { class: "alarm quiet" }, text)),
  );
}

// ---------------------------------------------------------------- small DOM helper

function node(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (k === "class") n.className = v;
    else n.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) n.append(c);
  return n;
}

// ---------------------------------------------------------------- tabs

function showTab(name) {
  for (const b of document.querySelectorAll("[data-tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === name));
    // One tab stop for the tab list; the arrow keys move within it.
    b.tabIndex = b.dataset.tab === name ? 0 : -1;
  }
  for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== `tab-${name}`;
  if (name === "stocktake") loadSweeps();
  if (name === "environment") renderEnvironment(true);
  if (name === "loans") loadLoans();
  if (name === "records") showRecords();
  if (name === "stats") loadStats();
  if (name === "find") draw();
  if (name === "picks") renderPicks();
}

// ---------------------------------------------------------------- finding a box

let searchTimer = null;
let searchAbort = null;
let searchSeq = 0;
let results = [];

const SEARCH_PAGE = 12;

function resultItem(box) {
  return node(
    "li",
    {},
    node(
      "button",
      { type: "button", class: "result", "data-archive-no": box.archive_no, onclick: () => showBox(box) },
      node("strong", {}, box.archive_no),
      node("span", { class: "title" }, box.title),
      node("span", { class: "where" }, whereShort(box)),
    ),
  );
}

/// Where a found box is, in a few words for the result list.
function whereShort(box) {
  const loc = box.location;
  if (loc && loc.loan) return t("on_loan_short", { borrower: loc.loan.borrower });
  if (box.place) return named(box.place.name);
  if (!loc) return t("not_on_shelf");
  if (loc.state === "lost") return t("settled_lost");
  if (loc.state === "left_without_loan") return t("left_without_loan");
  return shelfWords(loc.shelf);
}

/// Searches `text`; with `more`, fetches the next page of the same search and adds it.
async function runSearch(text, more = false) {
  const q = text.trim();
  if (searchAbort) searchAbort.abort();
  const seq = ++searchSeq;
  $("search-more").hidden = true;
  if (!q) {
    results = [];
    $("results").replaceChildren();
    $("search-note").textContent = "";
    return;
  }
  searchAbort = new AbortController();
  const offset = more ? results.length : 0;
  try {
    const category = $("search-category").value.trim();
    const range = $("search-range").value;
    const year = state.room.year_field ? $("search-year").value.trim() : "";
    const narrow = (category ? `&category=${encodeURIComponent(category)}` : "") + (range ? `&range=${range}` : "")
      + (/^\d{4}$/.test(year) ? `&year=${year}` : "");
    const found = await api("GET", `/api/v1/boxes?q=${encodeURIComponent(q)}&limit=${SEARCH_PAGE}&offset=${offset}${narrow}`, undefined, {
      signal: searchAbort.signal,
    });
    if (seq !== searchSeq) return;
    results = more ? results.concat(found.items) : found.items;
    const total = found.total;
    $("search-note").textContent = !results.length
      ? t("search_none", { q })
      : t(found.estimated ? "search_about" : "search_count", { n: total.toLocaleString(), shown: results.length });
    const items = found.items.map(resultItem);
    if (more) $("results").append(...items);
    else $("results").replaceChildren(...items);
    $("search-more").hidden = results.length >= total || found.items.length === 0;
    $("search-more").onclick = () => runSearch(q, true);
  } catch (e) {
    if (e.name === "AbortError" || seq !== searchSeq) return;
    if (!more) {
      results = [];
      $("results").replaceChildren();
    }
    $("search-note").textContent = e.message;
  }
}

const RECENT_KEY = "stackroom.recent";

/// What this browser searched for lately (the searches that found the box chosen), newest
/// first, offered as the search field's suggestions.
function rememberSearch(q) {
  const text = q.trim();
  if (!text) return;
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
  } catch {
    recent = [];
  }
  recent = [text, ...recent.filter((r) => r !== text)].slice(0, 8);
  localStorage.setItem(RECENT_KEY, JSON.stringify(recent));
  showRecentSearches();
}

function showRecentSearches() {
  let recent = [];
  try {
    recent = JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
  } catch {
    recent = [];
  }
  $("recent-searches").replaceChildren(...recent.map((r) => node("option", { value: r })));
}

function buildSearchRanges() {
  const select = $("search-range");
  const value = select.value;
  select.replaceChildren(node("option", { value: "" }, t("search_any_range")),
    ...state.room.ranges.map((r) => node("option", { value: r.id }, t("range_name", { name: named(r.name) }))));
  select.value = value;
  $("search-year-label").hidden = !state.room.year_field;
}

function showBox(box) {
  if ($("search").value.trim() && results.some((r) => r.archive_no === box.archive_no)) rememberSearch($("search").value);
  if (!state.focus || state.focus.archive_no !== box.archive_no) {
    state.watching = null;
    $("motion").textContent = "";
    $("motion").className = "motion";
  }
  state.focus = box;
  $("box").hidden = false;
  $("tab-find").classList.add("has-box");
  $("box").scrollIntoView({ block: "nearest" });
  $("box").dataset.archiveNo = box.archive_no;
  $("box-no").textContent = box.archive_no;
  $("box-title").textContent = box.title;
  const loc = box.location;
  const button = $("open-aisle");
  if (loc && loc.loan) {
    $("box-where").textContent = t("on_loan", { borrower: loc.loan.borrower, since: when(loc.loan.since), due: loc.loan.due });
    $("box-meta").textContent = t("home_shelf", { shelf: shelfWords(loc.shelf) });
    button.disabled = true;
  } else if (loc && loc.place) {
    $("box-where").textContent = t("in_place", { place: named(loc.place.name), since: when(loc.place.since) });
    $("box-meta").textContent = t("home_shelf", { shelf: shelfWords(loc.shelf) });
    button.disabled = true;
  } else if (loc && (loc.state === "left_without_loan" || loc.state === "lost")) {
    $("box-where").textContent = t(loc.state);
    $("box-meta").textContent = t("home_shelf", { shelf: shelfWords(loc.shelf) });
    button.disabled = true;
  } else if (loc) {
    $("box-where").textContent = shelfWords(loc.shelf);
    $("box-meta").textContent = t("box_meta", {
      aisle: loc.aisle.aisle,
      range: rangeName(loc.aisle.range),
      source: t(`source_${loc.source}`),
      since: when(loc.since),
    });
    const motorized = state.room.ranges.some((r) => r.id === loc.aisle.range && r.motorized);
    button.disabled = !motorized;
    button.title = motorized ? "" : t("manual_range");
  } else {
    $("box-where").textContent = box.place
      ? t("in_place", { place: named(box.place.name), since: when(box.place.since) })
      : t("not_on_shelf");
    $("box-meta").textContent = "";
    button.disabled = true;
  }
  button.textContent = loc ? t("open_aisle_n", { aisle: loc.aisle.aisle }) : t("open_aisle");
  refreshOpenButton();
  if ($("box-more").open) loadBoxMore(box);
  else $("box-more-body").replaceChildren();
  draw();
}

// ---------------------------------------------------------------- pick list

const PICKS_KEY = "stackroom.picks";

/// The boxes chosen to fetch, kept by this tab: archive number → whether it is picked.
function picks() {
  try {
    return JSON.parse(sessionStorage.getItem(PICKS_KEY)) || {};
  } catch {
    return {};
  }
}

function savePicks(list) {
  sessionStorage.setItem(PICKS_KEY, JSON.stringify(list));
  $("picks-count").textContent = Object.keys(list).length ? `(${Object.keys(list).length})` : "";
}

/// The order to walk the room in: by range, aisle, then the shelf; boxes not on a shelf
/// (lent, in a place, lost) last.
function walkOrder(a, b) {
  const key = (box) => {
    const loc = box.location;
    if (!openable(loc)) return [1e9, 0, ""];
    return [loc.aisle.range * 1000 + loc.aisle.aisle, 0, loc.shelf.address];
  };
  const [x, y] = [key(a), key(b)];
  return x[0] - y[0] || x[2].localeCompare(y[2]) || a.archive_no.localeCompare(b.archive_no);
}

async function renderPicks() {
  const list = picks();
  const boxes = (await Promise.all(Object.keys(list).map((no) =>
    api("GET", `/api/v1/boxes/${encodeURIComponent(no)}`).catch(() => null)))).filter(Boolean);
  boxes.sort(walkOrder);
  state.pickBoxes = boxes;
  $("picks-list").replaceChildren(...boxes.map((box) => {
    const loc = box.location;
    const done = node("input", { type: "checkbox", "aria-label": t("col_picked"), "data-picked": box.archive_no });
    done.checked = Boolean(list[box.archive_no]);
    done.addEventListener("change", () => {
      const now = picks();
      now[box.archive_no] = done.checked;
      savePicks(now);
      renderPicksNext();
    });
    const where = openable(loc)
      ? `${t("aisle_of", { aisle: loc.aisle.aisle, range: t("range_name", { name: rangeName(loc.aisle.range) }) })} · ${shelfWords(loc.shelf)}`
      : whereShort(box);
    return node("tr", { "data-pick": box.archive_no },
      node("td", {}, done),
      node("td", {}, node("strong", {}, box.archive_no), node("small", { class: "title" }, box.title)),
      node("td", {}, where),
      node("td", { class: "no-print" }, node("button", { type: "button", onclick: () => {
        const now = picks();
        delete now[box.archive_no];
        savePicks(now);
        renderPicks();
      } }, t("picks_remove"))));
  }));
  renderPicksNext();
}

/// The next aisle to open: the first in walking order with a box not yet picked.
function renderPicksNext() {
  const list = picks();
  const next = (state.pickBoxes || []).find((b) => !list[b.archive_no] && openable(b.location));
  const button = $("picks-next");
  button.disabled = !next || state.asking;
  button.textContent = next
    ? t("picks_next", { aisle: next.location.aisle.aisle, range: t("range_name", { name: rangeName(next.location.aisle.range) }) })
    : t("picks_none_next");
  button.dataset.archiveNo = next ? next.archive_no : "";
}

async function openNextPick() {
  const no = $("picks-next").dataset.archiveNo;
  if (!no || state.asking) return;
  state.asking = true;
  renderPicksNext();
  try {
    await api("POST", `/api/v1/boxes/${encodeURIComponent(no)}/retrieve`);
    $("picks-status").textContent = t("picks_opening", { box: no });
  } catch (e) {
    $("picks-status").textContent = e.message;
  } finally {
    state.asking = false;
    renderPicksNext();
  }
}

/// The rest of a box's story, when asked for: when it was last seen where it belongs, its
/// neighbours on the shelf, and its life newest first (moves, places, loans, what
/// stocktakes found amiss).
async function loadBoxMore(box) {
  const no = encodeURIComponent(box.archive_no);
  const loc = box.location;
  const [history, loans, findings, shelf] = await Promise.all([
    api("GET", `/api/v1/boxes/${no}/history`),
    api("GET", `/api/v1/loans?box=${no}&limit=50`),
    api("GET", `/api/v1/boxes/${no}/findings`).catch(() => ({ items: [] })), // no readers
    loc ? api("GET", `/api/v1/shelves/${encodeURIComponent(loc.shelf.address)}/boxes`) : null,
  ]).catch((e) => {
    $("box-more-body").replaceChildren(node("p", { class: "error" }, e.message));
    return [];
  });
  if (!history || !state.focus || state.focus.archive_no !== box.archive_no) return;
  const lines = [
    ...history.events.map((e) => ({ at: e.at, text: t(`history_${e.kind}`, {
      from: addressWords(e.from), to: addressWords(e.to), actor: e.actor, reason: e.reason }) })),
    ...history.places.map((p) => ({ at: p.at, text: t(`history_place_${p.kind}`, {
      place: placeName(p.place), actor: p.actor, reason: p.reason }) })),
    ...loans.items.map((l) => ({ at: l.created_at, text: t("history_loan", {
      id: l.id, borrower: l.borrower.name, state: t(`loan_state_${l.state}`), due: l.due }) })),
    ...findings.items.map((f) => ({ at: f.at, text: t(`history_found_${f.status}`, {
      id: f.sweep, found: addressWords(f.found) }) })),
  ].sort((a, b) => (a.at < b.at ? 1 : -1));
  const neighbours = shelf ? shelf.items.map((n) => node("li", {},
    n.archive_no === box.archive_no
      ? node("strong", {}, `${n.archive_no} ${n.title}`)
      : node("button", { type: "button", class: "link", onclick: async () => {
        try {
          showBox(await api("GET", `/api/v1/boxes/${encodeURIComponent(n.archive_no)}`));
        } catch (e) {
          $("box-more-body").prepend(node("p", { class: "error" }, e.message));
        }
      } }, `${n.archive_no} ${n.title}`))) : [];
  $("box-more-body").replaceChildren(
    node("p", {}, loc && loc.last_seen ? t("last_seen", { when: when(loc.last_seen) }) : t("last_seen_never")),
    shelf ? node("h3", {}, t("neighbours", { shelf: shelfWords(loc.shelf), n: shelf.items.length })) : "",
    shelf ? node("ol", { class: "neighbours" }, ...neighbours) : "",
    node("h3", {}, t("box_life")),
    node("ol", { class: "box-life" }, ...lines.map((l) => node("li", {}, node("time", {}, when(l.at)), " ", l.text))),
  );
}

function placeName(id) {
  const p = (state.room.places || []).find((x) => x.id === id);
  return p ? named(p.name) : id;
}

/// Whether the box's aisle is one the page may offer to open: the box is on its shelf
/// (not lent, not in a place, not gone) in a motorized range.
function openable(loc) {
  return Boolean(loc && loc.aisle && !loc.loan && !loc.place && loc.state === "on_shelf"
    && state.room.ranges.some((r) => r.id === loc.aisle.range && r.motorized));
}

/// The Open aisle button says what is true of the chosen box's aisle: open already (no
/// button to press), being opened by this page (pressed once, so not again), or closed.
function refreshOpenButton() {
  const loc = state.focus && state.focus.location;
  const button = $("open-aisle");
  if (!openable(loc)) return; // `showBox` has said why it cannot be opened
  const { range, aisle } = loc.aisle;
  const view = state.ranges.get(range);
  const w = state.watching;
  const op = w && state.ops.get(w.op);
  const opening = w && w.range === range && (!op || ["queued", "starting", "moving"].includes(op.state));
  const open = view && view.open_aisle === aisle && !opening;
  button.disabled = Boolean(opening || open || state.asking);
  button.textContent = open ? t("aisle_is_open", { aisle }) : t("open_aisle_n", { aisle });
}

async function openAisle() {
  const box = state.focus;
  if (!box || !box.location) return;
  const { range, aisle } = box.location.aisle;
  const button = $("open-aisle");
  if (button.disabled) return; // one command per press
  button.disabled = true;
  state.asking = true;
  setMotion("pending", t("motion_asking", { aisle, range: rangeName(range) }));
  try {
    const started = await api("POST", `/api/v1/boxes/${encodeURIComponent(box.archive_no)}/retrieve`);
    state.watching = { op: started.operation, range, aisle };
    showMotion(state.ops.get(started.operation) || { id: started.operation, state: "queued", range });
    // Events may have been missed while the stream reconnected: ask once.
    api("GET", `/api/v1/operations/${encodeURIComponent(started.operation)}`)
      .then(onOperation)
      .catch(() => {});
  } catch (e) {
    const reason = e.problem && e.problem.reason;
    setMotion("refused", t("motion_refused", { why: why(reason, range, e.message) }), reason);
  } finally {
    state.asking = false;
    refreshOpenButton();
  }
}

function setMotion(kind, text, reason) {
  const p = $("motion");
  p.className = `motion ${kind}`;
  p.dataset.state = kind;
  if (reason) p.dataset.reason = reason;
  else delete p.dataset.reason;
  p.textContent = text;
}

function showMotion(op) {
  showMotionLine(op);
  refreshOpenButton();
}

function showMotionLine(op) {
  const { range, aisle } = state.watching;
  const params = { aisle, range: rangeName(range) };
  switch (op.state) {
    case "queued":
      return setMotion("pending", t("motion_queued", params));
    case "starting":
      return setMotion("moving", t("motion_starting", params));
    case "moving":
      return setMotion("moving", t("motion_moving", params));
    case "done":
      return setMotion("open", t("motion_done", params));
    default:
      return setMotion(
        op.state,
        t(`motion_${op.state}`, { ...params, why: why(op.reason, range, op.message) }),
        op.reason,
      );
  }
}

// ---------------------------------------------------------------- ranges

const cards = new Map(); // range id -> its card's parts

function buildRangeCards() {
  cards.clear();
  const list = state.room.ranges.map((r) => {
    if (!r.motorized) {
      return node("article", { class: "card manual", "data-range": r.id },
        node("h3", {}, t("range_name", { name: named(r.name) })), node("p", {}, t("manual_range")));
    }
    const status = node("ul", { class: "status" });
    const feedback = node("p", { class: "feedback", role: "status", "aria-live": "polite" });
    const aisles = node("select", { "aria-label": t("aisle") },
      ...Array.from({ length: r.carriages.length - 1 }, (_, i) =>
        node("option", { value: i + 1 }, t("map_aisle", { aisle: i + 1 }))));
    const act = (kind) => () => rangeAction(r.id, kind, +aisles.value);
    const lock = node("button", { type: "button", "data-may": "lock", onclick: act("lock") }, t("lock"));
    const unlock = node("button", { type: "button", "data-may": "unlock", onclick: act("unlock") }, t("unlock"));
    const card = node("article", { class: "card", "data-range": r.id },
      node("h3", {}, t("range_name", { name: named(r.name) })),
      status,
      node("div", { class: "actions" },
        node("span", { class: "open-group", "data-may": "open" }, aisles,
          node("button", { type: "button", "data-action": "open", onclick: act("open") }, t("open"))),
        node("button", { type: "button", "data-may": "close", "data-action": "close", onclick: act("close") }, t("close")),
        node("button", { type: "button", "data-may": "ventilate", "data-action": "ventilate", onclick: act("ventilate") }, t("ventilate")),
        lock,
        unlock,
        node("button", { type: "button", class: "danger", "data-may": "stop", "data-action": "stop", onclick: act("stop") }, t("stop"))),
      feedback);
    cards.set(r.id, { card, status, feedback, lock, unlock });
    return card;
  });
  $("range-cards").replaceChildren(...list);
  applyRole();
}

function updateRangeCard(view) {
  const parts = cards.get(view.range);
  if (!parts) return;
  const items = [];
  const item = (text, cls) => items.push(node("li", { class: cls || "" }, text));
  if (view.estop) item(t("state_estop"), "loud");
  for (const f of view.faults) item(t("state_fault", { fault: f }), "loud");
  if (view.link !== "up") item(t("state_link_down", { why: view.link_error || "" }), "loud");
  item(t(`range_motion_${view.motion}`), view.motion === "moving" ? "busy" : "");
  item(view.open_aisle ? t("state_open", { aisle: view.open_aisle }) : t("state_closed"));
  if (view.locked) item(t("state_locked"), "warn");
  if (view.occupied_aisles.length) item(t("state_people", { aisles: view.occupied_aisles.join(", ") }), "warn");
  if (view.obstacle) item(t("state_obstacle"), "warn");
  if (view.stop_pending) item(t("state_stop_pending"), "loud");
  for (const a of view.interlocks || []) item(t("state_interlock", { alarm: a }), "loud");
  parts.status.replaceChildren(...items);
  parts.card.classList.toggle("alarm", view.estop || view.faults.length > 0 || view.link !== "up" || view.stop_pending);
  parts.lock.hidden = !may("lock") || view.locked;
  parts.unlock.hidden = !may("unlock") || !view.locked;
}

function updateRangeOperation(op) {
  const parts = cards.get(op.range);
  if (!parts) return;
  let text = t("op_line", { kind: t(`op_${op.kind}`), state: t(`op_state_${op.state}`), actor: op.actor });
  if (FINAL.includes(op.state) && op.state !== "done") text += ` — ${why(op.reason, op.range, op.message)}`;
  parts.feedback.textContent = text;
  parts.feedback.className = `feedback ${op.state}`;
}

async function rangeAction(range, kind, aisle) {
  const path = kind === "open" ? `/api/v1/ranges/${range}/aisles/${aisle}/open` : `/api/v1/ranges/${range}/${kind}`;
  const parts = cards.get(range);
  try {
    await api("POST", path);
  } catch (e) {
    const reason = e.problem && e.problem.reason;
    parts.feedback.textContent = t("action_refused", { why: why(reason, range, e.message) });
    parts.feedback.className = "feedback refused";
  }
}

// ---------------------------------------------------------------- stocktakes

function buildSweepScopes() {
  const select = $("sweep-scope");
  const value = select.value;
  select.replaceChildren(
    node("option", { value: "room" }, t("scope_room")),
    ...state.room.ranges.map((r) => node("option", { value: `range:${r.id}` }, t("range_name", { name: named(r.name) }))),
  );
  if (value) select.value = value;
}

function scopeWords(scope) {
  if (scope.room) return t("scope_room");
  if (scope.range !== undefined) return t("range_name", { name: rangeName(scope.range) });
  if (scope.shelves) return t("scope_shelves", { n: scope.shelves.length });
  return "";
}

/// Who started a sweep: `api:NAME` and `cli:NAME` are a token's name, `schedule:NAME` a
/// schedule's; older sweeps say only `api` or `cli`.
function triggerWords(trigger) {
  const [how, name] = trigger.split(/:(.*)/s);
  if (how === "schedule") return t("trigger_schedule", { name });
  if (name) return how === "cli" ? t("trigger_cli", { name }) : name;
  return t(how === "cli" ? "trigger_command_line" : "trigger_api");
}

function summaryWords(s) {
  return t("summary", s);
}

async function loadSweeps() {
  try {
    const list = await api("GET", "/api/v1/sweeps?limit=10");
    $("sweep-list").replaceChildren(
      ...list.items.map((s) =>
        node("tr", { onclick: () => openSweep(s.id), class: "clickable" },
          node("td", {}, `#${s.id}`),
          node("td", {}, t(`sweep_state_${s.state}`)),
          node("td", {}, triggerWords(s.trigger)),
          node("td", {}, when(s.started_at)),
          node("td", {}, s.state === "done" ? summaryWords(s.summary) : s.note || ""))),
    );
    const running = list.items.find((s) => s.state === "running");
    showSweepRunning(running);
    if (running && (!state.sweep || state.sweep.id !== running.id)) openSweep(running.id);
  } catch (e) {
    $("sweep-error").textContent = e.message;
  }
}

async function startSweep(event) {
  event.preventDefault();
  $("sweep-error").textContent = "";
  const scopeValue = $("sweep-scope").value;
  const scope = scopeValue === "room" ? { room: true } : { range: +scopeValue.split(":")[1] };
  try {
    const view = await api("POST", "/api/v1/sweeps", { scope, apply: $("sweep-apply").value });
    showSweep(view);
    pollSweep();
  } catch (e) {
    $("sweep-error").textContent = e.message;
  }
}

async function openSweep(id) {
  try {
    const view = await api("GET", `/api/v1/sweeps/${id}`);
    showSweep(view);
    if (view.state === "running") pollSweep();
  } catch (e) {
    $("sweep-error").textContent = e.message;
  }
}

function pollSweep() {
  clearTimeout(state.sweepTimer);
  state.sweepTimer = setTimeout(async () => {
    if (!state.sweep) return;
    try {
      const view = await api("GET", `/api/v1/sweeps/${state.sweep.id}`);
      showSweep(view);
      if (view.state === "running") pollSweep();
      else loadSweeps();
    } catch (e) {
      $("sweep-status").textContent = e.message;
      if (e.status !== 401) pollSweep();
    }
  }, 1000);
}

/// One stocktake runs at a time: while one runs, the start button says which and waits.
function showSweepRunning(running) {
  const start = $("sweep-form").querySelector("button[type=submit]");
  start.disabled = Boolean(running);
  $("sweep-running").textContent = running ? t("sweep_running_now", { id: running.id, scope: scopeWords(running.scope) }) : "";
}

function showSweep(view) {
  if (view.state === "running") showSweepRunning(view);
  else if (state.sweep && state.sweep.id === view.id && state.sweep.state === "running") showSweepRunning(null);
  const changed = !state.sweep || state.sweep.id !== view.id || state.sweep.state !== view.state;
  state.sweep = view;
  $("sweep").hidden = false;
  $("sweep").dataset.state = view.state;
  $("sweep-title").textContent = t("sweep_title", { id: view.id, scope: scopeWords(view.scope) });
  const p = view.progress;
  $("sweep-progress").value = view.state === "done" ? 1 : p.fraction;
  let status = t("sweep_progress", { state: t(`sweep_state_${view.state}`), done: p.done, antennas: p.antennas, reads: p.reads });
  // The server's notes and a reader's own error are English: the state and the reader's
  // name say it in the page's language; the detail follows only where it is the reader's.
  if (view.note && (state.lang === "en" || view.state === "failed")) status += ` — ${view.note}`;
  const failing = (p.readers || []).filter((r) => r.error);
  for (const r of failing) {
    status += ` — ${t("reader_trouble", { reader: r.reader })}${state.lang === "en" ? `: ${r.error}` : ""}`;
  }
  $("sweep-status").textContent = status;
  $("sweep-cancel").hidden = !may("cancel_sweep") || view.state !== "running";
  if (changed) {
    $("sweep-report").replaceChildren();
    if (view.state === "done") loadReport(view.id);
  }
}

async function cancelSweep() {
  if (!state.sweep) return;
  try {
    await api("DELETE", `/api/v1/sweeps/${state.sweep.id}`);
  } catch (e) {
    $("sweep-status").textContent = e.message;
  }
}

const REPORT_ROWS = 200;

function reportTable(title, cls, head, rows) {
  if (!rows.length) return null;
  const shown = rows.slice(0, REPORT_ROWS);
  return node("section", { class: `report ${cls}` },
    node("h3", {}, `${title} (${rows.length})`),
    node("table", {},
      node("thead", {}, node("tr", {}, ...head.map((h) => node("th", {}, h)))),
      node("tbody", {}, ...shown.map((cells) => node("tr", {}, ...cells.map((c) => node("td", {}, c)))))),
    rows.length > shown.length ? node("p", { class: "note" }, t("report_more", { n: rows.length - shown.length })) : null);
}

/// The aisle a shelf is reached through, if its face looks into one (the outer face of an
/// end carriage looks at the wall): a left face into aisle `carriage - 1`, a right face
/// into aisle `carriage`.
function aisleOf(address) {
  const shelf = parseShelf(address);
  const range = shelf && state.room.ranges.find((r) => r.id === shelf.range);
  if (!range || !range.motorized) return null;
  const aisle = shelf.face === "left" ? shelf.carriage - 1 : shelf.carriage;
  return aisle >= 1 && aisle < range.carriages.length ? { range: shelf.range, aisle } : null;
}

/// A report row's actions: open the aisle where the box is (or should be) and, for a box
/// found elsewhere, take the found shelf as its binding.
function findingActions(f, shelf, feedback) {
  const actions = [];
  const where = aisleOf(shelf);
  if (where && may("open")) {
    actions.push(node("button", { type: "button", "data-action": "open", onclick: async () => {
      try {
        await api("POST", `/api/v1/ranges/${where.range}/aisles/${where.aisle}/open`);
        feedback.textContent = t("report_opening", { aisle: where.aisle, range: t("range_name", { name: rangeName(where.range) }) });
      } catch (e) {
        feedback.textContent = e.message;
      }
    } }, t("open_aisle_n", { aisle: where.aisle })));
  }
  if (f.status === "misplaced" && !f.applied && may("bind")) {
    actions.push(node("button", { type: "button", "data-action": "rebind", onclick: async (event) => {
      try {
        await api("PUT", `/api/v1/boxes/${encodeURIComponent(f.archive_no)}/binding`,
          { shelf: f.found, reason: t("report_rebind_reason", { id: state.sweep.id }) });
        feedback.textContent = t("report_rebound", { shelf: addressWords(f.found) });
        event.target.disabled = true;
      } catch (e) {
        feedback.textContent = e.message;
      }
    } }, t("report_rebind")));
  }
  return node("span", { class: "row-actions" }, ...actions);
}

/// A finding's confidence, marked uncertain (with its evidence) below the sync threshold.
function confidenceCell(f, threshold) {
  if (f.confidence == null) return "";
  const pct = `${Math.round(f.confidence * 100)} %`;
  if (f.confidence >= threshold) return pct;
  const evidence = (f.evidence || []).map((e) =>
    t("report_evidence", { shelf: addressWords(e.shelf), reads: e.reads, rssi: Math.round(e.max_rssi_dbm) })).join("; ");
  return node("span", { class: "uncertain" }, `${pct} · ${t("report_uncertain")}`,
    node("small", {}, evidence));
}

async function loadReport(id) {
  let report;
  try {
    report = await api("GET", `/api/v1/sweeps/${id}/report`);
  } catch (e) {
    $("sweep-report").textContent = e.message;
    return;
  }
  if (!state.sweep || state.sweep.id !== id) return;
  const by = (status) => report.findings.filter((f) => f.status === status);
  const s = report.sweep.summary;
  const feedback = node("p", { class: "feedback", role: "status" });
  const box = (f) => node("span", {}, node("strong", {}, f.archive_no), f.title ? node("small", { class: "title" }, f.title) : "");
  // A section with no rows is left out (`reportTable` gives null), not written as "null".
  $("sweep-report").replaceChildren(...[
    node("p", { class: "summary" }, summaryWords(s),
      report.sweep.applied ? ` — ${t("report_applied", { n: report.sweep.applied })}` : ""),
    node("div", { class: "actions no-print" },
      node("button", { type: "button", onclick: () => downloadCsv(id) }, t("report_csv")),
      node("button", { type: "button", onclick: () => window.print() }, t("report_print"))),
    feedback,
    reportTable(t("report_misplaced"), "misplaced", [t("col_box"), t("col_bound"), t("col_found"), t("col_confidence"), ""],
      by("misplaced").map((f) => [box(f), addressWords(f.bound), addressWords(f.found), confidenceCell(f, report.sync_confidence),
        findingActions(f, f.found, feedback)])),
    reportTable(t("report_missing"), "missing", [t("col_box"), t("col_bound"), ""],
      by("missing").map((f) => [box(f), addressWords(f.bound), findingActions(f, f.bound, feedback)])),
    reportTable(t("report_returned_without_check_in"), "returned", [t("col_box"), t("col_bound"), t("col_found")],
      by("returned_without_check_in").map((f) => [box(f), addressWords(f.bound), addressWords(f.found)])),
    reportTable(t("report_on_loan"), "on-loan", [t("col_box"), t("col_bound")],
      by("on_loan").map((f) => [box(f), addressWords(f.bound)])),
    reportTable(t("report_unknown"), "unknown", [t("col_epc"), t("col_found")],
      by("unknown").map((f) => [f.epc, addressWords(f.found)])),
    reportTable(t("report_not_read"), "not-read", [t("col_shelf"), t("col_reason")],
      report.unread.map((u) => [addressWords(u.shelf), u.code === "other" ? u.reason : t(`unread_${u.code}`, { reader: u.reader || "" })])),
  ].filter((part) => part !== null));
}

async function downloadCsv(id) {
  try {
    await openFile(`/api/v1/sweeps/${id}/report?format=csv`, `stackroom-sweep-${id}.csv`);
  } catch (e) {
    $("sweep-status").textContent = e.message;
  }
}

// ---------------------------------------------------------------- environment

function zoneName(id) {
  const z = state.zones.find((x) => x.id === id);
  return z ? named(z.name) : id;
}

/// Each range's zone climate: the mean of the zone's fresh climate sensors.
function rangeClimate() {
  const out = new Map();
  for (const z of state.zones) {
    const fresh = [...state.sensors.values()].filter((p) => p.zone === z.id && p.kind === "climate" && p.state !== "stale");
    const mean = (f) => (fresh.length ? fresh.reduce((s, p) => s + f(p), 0) / fresh.length : null);
    const alarm = [...state.alarms.values()].some((a) => a.zone === z.id);
    for (const r of z.ranges) {
      out.set(r, { temperature: mean((p) => p.temperature), humidity: mean((p) => p.humidity), alarm });
    }
  }
  return out;
}

async function loadEnvironment() {
  clearTimeout(state.envTimer);
  if (!state.me) return;
  try {
    const env = await api("GET", "/api/v1/environment");
    state.zones = env.zones;
    state.sensors = new Map(env.sensors.map((p) => [p.id, p]));
    const open = await api("GET", "/api/v1/alarms?state=open");
    state.alarms = new Map(open.items.map((a) => [a.id, a]));
    renderAlarms();
    draw();
    renderEnvironment(false);
  } catch (e) {
    if (e.status === 401) return;
  }
  // Staleness has no event of its own: look again now and then.
  state.envTimer = setTimeout(loadEnvironment, 10_000);
}

function onSensor(view) {
  state.sensors.set(view.id, view);
  draw();
  renderSensors();
}

function onAlarm(alarm) {
  if (alarm.state === "cleared") state.alarms.delete(alarm.id);
  else state.alarms.set(alarm.id, alarm);
  renderAlarms();
  renderAlarmList();
  draw();
}

function envVisible() {
  return !$("tab-environment").hidden;
}

function value(p) {
  if (p.state === "stale") return t("env_stale");
  if (p.kind === "climate" && p.temperature != null) return `${p.temperature.toFixed(1)} °C · ${p.humidity.toFixed(1)} %`;
  if (p.value == null) return "—";
  if (["dehumidifier", "fan", "relay"].includes(p.kind)) return p.value ? t("env_on") : t("env_off");
  return p.value ? t(`env_tripped_${p.kind}`) : t("env_clear");
}

function renderSensors() {
  if (!envVisible()) return;
  $("sensor-list").replaceChildren(
    ...[...state.sensors.values()].map((p) =>
      node("tr", { class: `sensor ${p.state}`, "data-sensor": p.id },
        node("td", {}, p.id),
        node("td", {}, t(`point_${p.kind}`)),
        node("td", {}, zoneName(p.zone)),
        node("td", {}, value(p)),
        node("td", {}, t(`env_state_${p.state}`)),
        node("td", {}, when(p.at)))),
  );
}

function renderAlarmList() {
  if (!envVisible()) return;
  const rows = [...state.alarms.values()].sort((a, b) => b.id - a.id).map((a) => {
    const note = node("input", { type: "text", "aria-label": t("ack_note"), placeholder: t("ack_note") });
    const ack = node("button", { type: "button", "data-may": "ack_alarm", onclick: async () => {
      try {
        onAlarm(await api("POST", `/api/v1/alarms/${a.id}/ack`, { note: note.value }));
      } catch (e) {
        ack.textContent = e.message;
      }
    } }, t("ack"));
    const canAck = a.state === "active" && may("ack_alarm");
    return node("tr", { class: `alarm-row ${a.state}`, "data-alarm": a.id },
      node("td", {}, t(`alarm_kind_${a.kind}`)),
      node("td", {}, `${a.sensor} · ${zoneName(a.zone)}`),
      node("td", {}, t(`alarm_state_${a.state}`)),
      node("td", {}, when(a.raised_at)),
      node("td", { class: "message" }, alarmText(a), a.ack_note ? ` — ${a.acked_by}: ${a.ack_note}` : ""),
      node("td", {}, canAck ? node("span", { class: "ack" }, note, ack) : ""));
  });
  $("alarm-list").replaceChildren(...rows);
  $("alarms-none").hidden = rows.length > 0;
}

/// The alarms of the past, any state, newest first: for the shift log and inspections.
async function loadAlarmHistory() {
  try {
    const list = await api("GET", "/api/v1/alarms?limit=100");
    $("alarm-history-list").replaceChildren(...list.items.map((a) => node("tr", { "data-alarm": a.id },
      node("td", {}, when(a.raised_at)),
      node("td", {}, alarmText(a)),
      node("td", {}, t(`alarm_state_${a.state}`)),
      node("td", {}, a.acked_at ? `${when(a.acked_at)} · ${a.acked_by}${a.ack_note ? `: ${a.ack_note}` : ""}` : ""),
      node("td", {}, a.cleared_at ? when(a.cleared_at) : ""))));
  } catch (e) {
    $("alarm-history-list").replaceChildren(node("tr", {}, node("td", { class: "error" }, e.message)));
  }
}

/// A period's readings of one sensor as CSV, for compliance records (hourly steps over a
/// month, finer over shorter periods, as the history keeps them).
async function exportReadings(event) {
  event.preventDefault();
  $("readings-error").textContent = "";
  const sensor = $("readings-sensor").value;
  const [from, to] = [$("readings-from").value, $("readings-to").value];
  const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
  const step = days <= 2 ? 60 : days <= 31 ? 600 : 3600;
  try {
    await openFile(`/api/v1/environment/${encodeURIComponent(sensor)}/history?from=${from}&to=${to}&step=${step}&format=csv`,
      `${sensor}-${from}-${to}.csv`);
  } catch (e) {
    $("readings-error").textContent = e.message;
  }
}

function fillReadingsForm() {
  const select = $("readings-sensor");
  const chosen = select.value;
  const climate = [...state.sensors.values()].filter((p) => p.kind === "climate");
  select.replaceChildren(...climate.map((p) => node("option", { value: p.id }, `${p.id} · ${zoneName(p.zone)}`)));
  if (chosen) select.value = chosen;
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  if (!$("readings-to").value) $("readings-to").value = day(Date.now());
  if (!$("readings-from").value) $("readings-from").value = day(Date.now() - 30 * 86_400_000);
}

async function renderEnvironment(charts) {
  if (!envVisible()) return;
  renderSensors();
  renderAlarmList();
  fillReadingsForm();
  if ($("alarm-history").open) loadAlarmHistory();
  if (!charts) return;
  for (const b of document.querySelectorAll("[data-span]")) b.setAttribute("aria-pressed", String(b.dataset.span === state.span));
  const to = Date.now();
  const from = to - (state.span === "day" ? 86_400_000 : 30 * 86_400_000);
  const step = state.span === "day" ? 600 : 6 * 3600;
  const format = (ms) => new Date(ms).toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", state.span === "day"
    ? { weekday: "short", hour: "2-digit", minute: "2-digit" } : { month: "short", day: "numeric" });
  const cards = [];
  const drawings = [];
  for (const z of state.zones) {
    const sensors = [...state.sensors.values()].filter((p) => p.zone === z.id && p.kind === "climate");
    const series = await Promise.all(sensors.map((p) =>
      api("GET", `/api/v1/environment/${encodeURIComponent(p.id)}/history?from=${new Date(from).toISOString()}&step=${step}`)
        .catch(() => ({ sensor: p.id, steps: [] }))));
    const lines = (metric) => series.map((s) => ({
      label: s.sensor,
      points: s.steps.filter((x) => x[metric]).map((x) => ({ x: Date.parse(x.at), ...x[metric] })),
    }));
    const humidity = node("div", { class: "chart-box" });
    const temperature = node("div", { class: "chart-box" });
    // Drawn once in the page, at the width they are shown.
    drawings.push(() => {
      drawChart(humidity, { lines: lines("humidity"), limits: z.humidity_limits, from, to, unit: "%", title: t("chart_humidity"), format });
      drawChart(temperature, { lines: lines("temperature"), limits: z.temperature_limits, from, to, unit: "°C", title: t("chart_temperature"), format });
    });
    const now = z.temperature == null ? t("env_stale") : `${z.temperature.toFixed(1)} °C · ${z.humidity.toFixed(1)} %`;
    cards.push(node("article", { class: "card zone", "data-zone": z.id },
      node("h3", {}, named(z.name)),
      node("p", { class: "now" }, now),
      node("p", { class: "note" }, t("zone_limits", {
        t0: z.temperature_limits[0], t1: z.temperature_limits[1], h0: z.humidity_limits[0], h1: z.humidity_limits[1],
      })),
      humidity, temperature));
  }
  $("zones").replaceChildren(...cards);
  for (const drawing of drawings) drawing();
  applyRole();
}

// ---------------------------------------------------------------- loans

const OPEN_LOANS = ["requested", "approved", "checked_out", "return_refused"];

async function loadLoans() {
  const filter = $("loan-filter").value;
  const who = $("loan-who").value.trim();
  const query = (filter === "overdue" ? "?overdue=true" : "?limit=200") + (who ? `&borrower=${encodeURIComponent(who)}` : "");
  try {
    const list = await api("GET", `/api/v1/loans${query}`);
    const items = filter === "open" ? list.items.filter((l) => OPEN_LOANS.includes(l.state)) : list.items;
    $("loan-list").replaceChildren(...items.map(loanCard));
    if (!items.length) $("loan-list").replaceChildren(node("p", { class: "note" }, t("loans_none")));
    applyRole();
  } catch (e) {
    $("loan-error").textContent = e.message;
  }
}

function loanCard(l) {
  const act = (action, body) => async () => {
    try {
      await api("POST", `/api/v1/loans/${l.id}/${action}`, body || { note: "" });
      loadLoans();
    } catch (e) {
      card.querySelector(".feedback").textContent = e.message;
    }
  };
  const buttons = [];
  const approveRight = l.kind === "external" ? "approve_external" : "approve_reading_room";
  if (l.state === "requested" && may(approveRight)) {
    buttons.push(node("button", { type: "button", "data-action": "approve", onclick: act("approve") }, t("loan_approve")));
    buttons.push(node("button", { type: "button", "data-action": "reject", onclick: act("reject") }, t("loan_reject")));
  }
  if (l.state === "approved" && may("loan")) {
    buttons.push(node("button", { type: "button", class: "primary", "data-action": "checkout", onclick: act("checkout") }, t("loan_checkout")));
  }
  if (["requested", "approved"].includes(l.state) && may("loan")) {
    buttons.push(node("button", { type: "button", "data-action": "cancel", onclick: act("cancel") }, t("loan_cancel")));
  }
  const rule = state.room.loans && state.room.loans[l.kind];
  if (l.state === "checked_out" && may("loan") && rule) {
    // Later than now, and no longer than the kind allows from today.
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    const later = node("input", { type: "date", "aria-label": t("loan_extend_to"), "data-extend": l.id,
      min: day(Date.parse(l.due) + 86_400_000), max: day(Date.now() + rule.max_days * 86_400_000) });
    buttons.push(later, node("button", { type: "button", "data-action": "extend", onclick: () =>
      act("extend", { due: later.value, note: "" })() }, t("loan_extend")));
  }
  buttons.push(node("button", { type: "button", "data-action": "slip", onclick: () =>
    openFile(`/api/v1/loans/${l.id}/slip`).catch((e) => { card.querySelector(".feedback").textContent = e.message; }) }, t("loan_slip")));
  const out = l.boxes.filter((b) => !b.returned_at);
  const inspections = [];
  const boxes = node("ul", { class: "loan-boxes" }, ...l.boxes.map((b) => {
    const item = node("li", {}, node("strong", {}, b.archive_no),
      b.inspection ? ` — ${t(`inspection_${b.inspection}`)}${b.note ? `: ${b.note}` : ""}` : "");
    const refused = l.state === "return_refused" && !b.returned_at && b.inspection && b.inspection !== "complete";
    if (b.settled) item.append(` — ${t(`settled_${b.settled}`)}`);
    if (refused && may("settle_loan")) {
      // A box that failed its inspection ends somewhere true: back on its shelf with a
      // note, in the repair room, or lost.
      const settlement = node("select", { "aria-label": t("settle_how"), "data-settle": b.archive_no },
        ...["accepted", "repair", "lost"].map((v) => node("option", { value: v }, t(`settle_${v}`))));
      const why = node("input", { type: "text", required: true, placeholder: t("settle_note"), "aria-label": t("settle_note"), "data-settle-note": b.archive_no });
      item.append(" ", settlement, " ", why, " ", node("button", { type: "button", "data-action": "settle", onclick: () =>
        act("settle", { archive_no: b.archive_no, settlement: settlement.value, note: why.value.trim() })() }, t("settle")));
      return item;
    }
    if (["checked_out", "return_refused"].includes(l.state) && !b.returned_at && may("loan")) {
      const result = node("select", { "aria-label": t("inspection"), "data-box": b.archive_no },
        ...["complete", "damaged", "pages_missing", "wrong_box"].map((r) => node("option", { value: r }, t(`inspection_${r}`))));
      const note = node("input", { type: "text", placeholder: t("ack_note"), "aria-label": t("ack_note") });
      inspections.push({ archive_no: b.archive_no, result, note });
      item.append(" ", result, " ", note);
    }
    return item;
  }));
  if (inspections.length) {
    buttons.push(node("button", { type: "button", class: "primary", "data-action": "return", onclick: () =>
      act("return", { inspections: inspections.map((i) => ({ archive_no: i.archive_no, result: i.result.value, note: i.note.value })) })() }, t("loan_return")));
  }
  const card = node("article", { class: `card loan ${l.state}${l.overdue ? " overdue" : ""}`, "data-loan": l.id, "data-state": l.state },
    node("h3", {}, `#${l.id} ${l.borrower.name}${l.borrower.department ? ` (${l.borrower.department})` : ""}`),
    node("p", {}, `${t(`kind_${l.kind}`)} · ${t(`loan_state_${l.state}`)} · ${t("loan_due_on", { due: l.due })}`,
      l.overdue ? node("strong", { class: "overdue-mark" }, ` ${t("loan_overdue")}`) : ""),
    // Boxes are out only once checked out: an approved loan has not left the room yet.
    node("p", { class: "note" }, l.purpose,
      out.length && ["checked_out", "return_refused"].includes(l.state) ? ` · ${t("loan_out", { n: out.length })}` : ""),
    boxes,
    node("div", { class: "actions" }, ...buttons),
    node("p", { class: "feedback", role: "status" }),
    node("details", { class: "loan-history" }, node("summary", {}, t("loan_history")),
      node("ol", {}, ...(l.events || []).map((e) => node("li", {},
        `${when(e.at)} · ${e.actor} · ${e.from ? `${t(`loan_state_${e.from}`)} → ` : ""}${t(`loan_state_${e.to}`)}`,
        e.note ? ` · ${e.note}` : "")))));
  return card;
}

/// The chosen kind's limits, before the request: the note says them, the due date
/// cannot be set past them, and it starts at the longest allowed.
function showLoanLimits() {
  const limits = state.room && state.room.loans;
  if (!limits) return;
  const rule = limits[$("loan-kind").value];
  if (!rule) return;
  const day = (d) => d.toISOString().slice(0, 10);
  const today = new Date();
  const last = new Date(today.getTime() + rule.max_days * 86_400_000);
  const due = $("loan-due");
  due.min = day(today);
  due.max = day(last);
  if (!due.value || due.value > due.max || due.value < due.min) due.value = due.max;
  let words = t("loan_limits", { days: rule.max_days, until: due.max, boxes: limits.max_boxes_per_borrower });
  if (rule.approval) {
    words += ` ${t(rule.four_eyes ? "loan_needs_other_approval" : "loan_needs_approval", { role: t(`role_${rule.approval}`) })}`;
  }
  $("loan-limits").textContent = words;
}

async function requestLoan(event) {
  event.preventDefault();
  $("loan-error").textContent = "";
  const boxes = $("loan-boxes").value.split(/[\s,;]+/).map((x) => x.trim()).filter(Boolean);
  try {
    await api("POST", "/api/v1/loans", {
      borrower: { name: $("loan-borrower").value.trim(), department: $("loan-department").value.trim() },
      boxes,
      purpose: $("loan-purpose").value.trim(),
      kind: $("loan-kind").value,
      due: $("loan-due").value,
    });
    $("loan-form").reset();
    showLoanLimits();
    $("loan-filter").value = "open";
    loadLoans();
  } catch (e) {
    $("loan-error").textContent = e.message;
  }
}

async function printLabel() {
  const box = state.focus;
  if (!box) return;
  try {
    const response = await api("GET", `/api/v1/boxes/${encodeURIComponent(box.archive_no)}/label`, undefined, { raw: true });
    const url = URL.createObjectURL(await response.blob());
    window.open(url, "_blank");
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (e) {
    setMotion("refused", e.message);
  }
}

// ---------------------------------------------------------------- records

let fields = null; // the room's declared fields

async function loadFields() {
  if (!fields) fields = (await api("GET", "/api/v1/fields")).items;
  return fields;
}

/// Opens a PDF, CSV or XLSX answer in a new tab (or as a download).
async function openFile(path, name) {
  const response = await api("GET", path, undefined, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const a = node("a", { href: url, download: name || "" });
  if (!name) a.target = "_blank";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function loadRecord(archiveNo) {
  $("record-find-error").textContent = "";
  const no = archiveNo.trim();
  if (!no) return;
  $("record-no").value = no;
  try {
    const [box, changes, contents, declared] = await Promise.all([
      api("GET", `/api/v1/boxes/${encodeURIComponent(no)}`),
      api("GET", `/api/v1/boxes/${encodeURIComponent(no)}/changes`),
      api("GET", `/api/v1/boxes/${encodeURIComponent(no)}/contents`),
      loadFields(),
    ]);
    showRecord(box, changes, contents, declared);
  } catch (e) {
    $("record").hidden = true;
    $("record-find-error").textContent = e.message;
  }
}

function showRecord(box, changes, contents, declared) {
  const record = $("record");
  record.hidden = false;
  record.dataset.archiveNo = box.archive_no;
  $("record-head").textContent = box.disposed
    ? `${box.archive_no} · ${t("record_disposed", { on: when(box.disposed.at) })}`
    : box.archive_no;
  $("record-title").value = box.title;
  $("record-reason").value = "";
  $("record-error").textContent = "";
  const editable = may("correct") && !box.disposed;
  $("record-title").disabled = !editable;
  $("record-fields").replaceChildren(...declared.map((f) => {
    const value = box.fields[f.key] ?? "";
    let input;
    if (f.kind === "choice") {
      input = node("select", { "data-field": f.key },
        node("option", { value: "" }, "—"),
        ...f.choices.map((c) => node("option", { value: c, selected: String(value) === c }, c)));
    } else {
      input = node("input", { "data-field": f.key, type: f.kind === "date" ? "date" : f.kind === "number" ? "number" : "text" });
      input.value = String(value);
    }
    input.disabled = !editable;
    return node("label", {}, node("span", {}, f.name), input);
  }));
  $("record-changes").replaceChildren(...changes.changes.slice().reverse().map((c) =>
    node("tr", {}, node("td", {}, when(c.at)), node("td", {}, fieldName(c.field)), node("td", {}, c.before ?? "—"),
      node("td", {}, c.after ?? "—"), node("td", {}, c.actor), node("td", {}, c.reason))));
  $("contents-list").replaceChildren(...contents.items.map((d) =>
    node("tr", {}, node("td", {}, String(d.item_no)), node("td", {}, d.title), node("td", {}, d.date ?? ""),
      node("td", {}, d.pages == null ? "" : String(d.pages)), node("td", {}, d.e_file ?? ""))));
  $("contents-form").hidden = !may("contents") || Boolean(box.disposed);
}

function fieldName(key) {
  if (key.startsWith("fields.")) {
    const f = (fields || []).find((x) => x.key === key.slice(7));
    return f ? f.name : key.slice(7);
  }
  return t(`field_${key}`);
}

async function saveRecord(event) {
  event.preventDefault();
  const no = $("record").dataset.archiveNo;
  const changed = { title: $("record-title").value, fields: {}, reason: $("record-reason").value.trim() };
  for (const input of $("record-fields").querySelectorAll("[data-field]")) {
    changed.fields[input.dataset.field] = input.value === "" ? null : input.value;
  }
  try {
    await api("PATCH", `/api/v1/boxes/${encodeURIComponent(no)}`, changed);
    await loadRecord(no);
  } catch (e) {
    $("record-error").textContent = e.message;
  }
}

async function addDocument(event) {
  event.preventDefault();
  const no = $("record").dataset.archiveNo;
  const pages = $("doc-pages").value;
  const item = { title: $("doc-title").value.trim() };
  if (pages) item.pages = Number(pages);
  if ($("doc-date").value) item.date = $("doc-date").value;
  if ($("doc-efile").value.trim()) item.e_file = $("doc-efile").value.trim();
  try {
    await api("POST", `/api/v1/boxes/${encodeURIComponent(no)}/contents`, { items: [item] });
    $("contents-form").reset();
    $("contents-error").textContent = "";
    await loadRecord(no);
  } catch (e) {
    $("contents-error").textContent = e.message;
  }
}

// ---------------------------------------------------------------- intake

async function loadTransfers() {
  if (!may("intake")) return;
  try {
    const list = await api("GET", "/api/v1/transfers?limit=20");
    $("transfer-list").replaceChildren(...list.items.map(transferCard));
  } catch (e) {
    $("transfer-error").textContent = e.message;
  }
}

function transferCard(tr) {
  const feedback = node("p", { class: "feedback", role: "status" });
  const items = node("ul", { class: "transfer-items" }, ...tr.items.map((i) => {
    const li = node("li", { "data-line": i.line }, `${i.line}. ${i.series} · ${i.title}`,
      i.extra ? ` (${t("transfer_extra")})` : "",
      i.found ? ` — ${t(`found_${i.found}`)}${i.note ? `: ${i.note}` : ""}` : "",
      i.archive_no ? node("strong", {}, ` → ${i.archive_no}`) : "");
    if (tr.state === "listed") {
      li.append(" ", node("select", { "data-check": i.line, "aria-label": t("transfer_check") },
        ...["received", "missing", "damaged"].map((f) => node("option", { value: f }, t(`found_${f}`)))));
    }
    return li;
  }));
  const act = (action, body) => async () => {
    try {
      await api("POST", `/api/v1/transfers/${tr.id}/${action}`, body());
      loadTransfers();
    } catch (e) {
      feedback.textContent = e.message;
    }
  };
  const buttons = [];
  if (tr.state === "listed") {
    const receiver = node("input", { "data-receiver": tr.id, placeholder: t("transfer_receiver"), "aria-label": t("transfer_receiver") });
    buttons.push(receiver, node("button", { type: "button", "data-action": "receive", onclick: act("receive", () => ({
      receiver: receiver.value.trim(),
      checks: [...items.querySelectorAll("[data-check]")].map((sel) => ({ line: Number(sel.dataset.check), found: sel.value })),
    })) }, t("transfer_receive")));
  }
  if (tr.state === "received") {
    buttons.push(node("button", { type: "button", class: "primary", "data-action": "accept", onclick: act("accept", () => ({ place: true })) }, t("transfer_accept")));
  }
  return node("article", { class: `card transfer ${tr.state}${tr.overdue ? " overdue" : ""}`, "data-transfer": tr.id, "data-state": tr.state },
    node("h3", {}, `#${tr.id} ${tr.office} · ${tr.deliverer}`),
    node("p", {}, `${t(`transfer_state_${tr.state}`)} · ${t("transfer_deadline", { day: tr.deadline })}`,
      tr.overdue ? node("strong", { class: "overdue-mark" }, ` ${t("transfer_overdue")}`) : "",
      tr.discrepancies ? ` · ${t("transfer_discrepancies", { n: tr.discrepancies })}` : ""),
    items, node("div", { class: "actions" }, ...buttons), feedback);
}

async function listTransfer(event) {
  event.preventDefault();
  $("transfer-error").textContent = "";
  const items = $("transfer-items").value.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [series, title, customer] = line.split(/[,，]/).map((x) => x.trim());
    const item = { series, title: title || "" };
    if (customer) item.fields = { customer_no: customer };
    return item;
  });
  try {
    await api("POST", "/api/v1/transfers", {
      office: $("transfer-office").value.trim(),
      deliverer: $("transfer-deliverer").value.trim(),
      completed_on: $("transfer-completed").value,
      items,
    });
    $("transfer-form").reset();
    loadTransfers();
  } catch (e) {
    $("transfer-error").textContent = e.message;
  }
}

// ---------------------------------------------------------------- retention

async function loadRetention() {
  if (!may("dispose")) return;
  try {
    const [due, disposals] = await Promise.all([
      api("GET", "/api/v1/appraisal?limit=50"),
      api("GET", "/api/v1/disposals"),
    ]);
    $("appraisal-note").textContent = t("appraisal_due", { n: due.total, day: due.as_of });
    $("appraisal-list").replaceChildren(...due.items.map((b) => node("li", {},
      node("label", {}, node("input", { type: "checkbox", value: b.archive_no, "data-due": b.archive_no }),
        ` ${b.archive_no} · ${b.title} · ${b.class_name} · ${t("appraisal_due_on", { day: b.due })}`))));
    $("disposal-list").replaceChildren(...disposals.items.map(disposalCard));
  } catch (e) {
    $("disposal-error").textContent = e.message;
  }
}

function disposalCard(d) {
  const feedback = node("p", { class: "feedback", role: "status" });
  const act = (action, body) => async () => {
    try {
      await api("POST", `/api/v1/disposals/${d.id}/${action}`, body());
      loadRetention();
    } catch (e) {
      feedback.textContent = e.message;
    }
  };
  const buttons = [];
  if (d.state === "proposed" && may("approve_disposal") && d.proposed_by !== state.me.name) {
    buttons.push(node("button", { type: "button", "data-action": "approve", onclick: act("approve", () => ({ note: "" })) }, t("loan_approve")));
    buttons.push(node("button", { type: "button", "data-action": "reject", onclick: act("reject", () => ({ note: "" })) }, t("loan_reject")));
  }
  if (d.state === "approved") {
    const method = node("input", { "data-method": d.id, placeholder: t("disposal_method"), "aria-label": t("disposal_method") });
    const witness = node("input", { "data-witness": d.id, placeholder: t("disposal_witness"), "aria-label": t("disposal_witness") });
    buttons.push(method, witness, node("button", { type: "button", class: "primary", "data-action": "carry-out",
      onclick: act("carry-out", () => ({ method: method.value.trim(), witness: witness.value.trim() })) }, t("disposal_carry_out")));
  }
  if (d.state === "carried_out") {
    buttons.push(node("button", { type: "button", "data-action": "certificate", onclick: () =>
      openFile(`/api/v1/disposals/${d.id}/certificate`).catch((e) => { feedback.textContent = e.message; }) }, t("disposal_certificate")));
  }
  return node("article", { class: `card disposal ${d.state}`, "data-disposal": d.id, "data-state": d.state },
    node("h3", {}, `#${d.id} · ${t(`disposal_state_${d.state}`)}`),
    node("p", {}, d.reason, ` · ${d.proposed_by}`, d.decided_by ? ` · ${d.decided_by}` : ""),
    node("p", { class: "note" }, d.boxes.map((b) => b.archive_no).join(", ")),
    node("div", { class: "actions" }, ...buttons), feedback);
}

async function proposeDisposal() {
  $("disposal-error").textContent = "";
  const boxes = [...$("appraisal-list").querySelectorAll("input:checked")].map((i) => i.value);
  try {
    await api("POST", "/api/v1/disposals", { boxes, reason: $("disposal-reason").value.trim() });
    $("disposal-reason").value = "";
    loadRetention();
  } catch (e) {
    $("disposal-error").textContent = e.message;
  }
}

function showRecords() {
  loadTransfers();
  loadRetention();
}

// ---------------------------------------------------------------- figures

async function loadStats() {
  try {
    const s = await api("GET", "/api/v1/stats");
    $("lights").replaceChildren(...s.warnings.map((w) => node("li", { class: `light ${w.level}`, "data-kind": w.kind, "data-level": w.level },
      node("span", { class: "lamp", role: "img", "aria-label": t(`light_${w.level}`), title: t(`light_${w.level}`) }), " ",
      w.kind.startsWith("range_")
        ? t("warning_range_fill", { n: w.count, range: rangeName(Number(w.kind.split("_")[1])) })
        : t(`warning_${w.kind}`, { n: w.count }))));
    const table = (title, head, rows) => node("section", { class: "figures" }, node("h3", {}, title),
      node("table", {}, node("thead", {}, node("tr", {}, ...head.map((h) => node("th", {}, h)))),
        node("tbody", {}, ...rows.map((r) => node("tr", {}, ...r.map((c) => node("td", {}, String(c))))))));
    $("stats-tables").replaceChildren(
      node("p", { class: "total", id: "stats-boxes" }, t("stats_boxes", { n: s.boxes.toLocaleString() })),
      table(t("stats_holdings"), [t("stats_category"), t("stats_year"), t("stats_count")],
        s.holdings.map((h) => [h.category, h.year, h.boxes])),
      table(t("stats_fill"), [t("stats_range"), t("stats_count"), t("stats_capacity"), "%"],
        s.fill.map((f) => [rangeName(f.range), f.boxes, f.capacity, f.percent])),
      table(t("stats_loans"), [t("stats_month"), t("loan_kind"), t("stats_count")],
        s.loans.map((l) => [l.month, t(`kind_${l.kind}`), l.loans])),
      table(t("stats_stocktakes"), [t("stats_month"), t("stats_sweeps"), t("stats_present"), t("stats_misplaced"), t("stats_missing"), t("stats_unknown")],
        s.stocktakes.map((x) => [x.month, x.sweeps, x.present, x.misplaced, x.missing, x.unknown])),
      table(t("stats_disposals"), [t("stats_month"), t("stats_count")], s.disposals.map((d) => [d.month, d.boxes])),
    );
  } catch (e) {
    $("stats-tables").replaceChildren(node("p", { class: "error" }, e.message));
  }
}

// ---------------------------------------------------------------- start

async function boot() {
  state.i18n = await (await fetch("/assets/i18n.json")).json();
  const chosen = localStorage.getItem(LANG_KEY);
  setLanguage(chosen || (navigator.language.startsWith("zh") ? "zh" : "en"));

  $("lang").addEventListener("change", (e) => {
    localStorage.setItem(LANG_KEY, e.target.value);
    setLanguage(e.target.value);
  });
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (token) signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut("", true));
  $("pick-box").addEventListener("click", () => {
    if (!state.focus) return;
    const list = picks();
    if (!(state.focus.archive_no in list)) list[state.focus.archive_no] = false;
    savePicks(list);
    $("box-meta").textContent = t("picks_added", { n: Object.keys(list).length });
  });
  $("picks-next").addEventListener("click", openNextPick);
  $("picks-print").addEventListener("click", () => window.print());
  $("picks-clear").addEventListener("click", () => {
    savePicks({});
    renderPicks();
  });
  savePicks(picks());
  $("readings-export").addEventListener("submit", exportReadings);
  $("map-in").addEventListener("click", () => zoomMap(0.7));
  $("map-out").addEventListener("click", () => zoomMap(1 / 0.7));
  $("map-all").addEventListener("click", () => {
    state.mapView = null;
    draw();
  });
  panMap();
  $("alarm-history").addEventListener("toggle", () => {
    if ($("alarm-history").open) loadAlarmHistory();
  });
  $("box-more").addEventListener("toggle", () => {
    if ($("box-more").open && state.focus) loadBoxMore(state.focus);
  });
  for (const b of document.querySelectorAll("[data-tab]")) {
    b.addEventListener("click", () => showTab(b.dataset.tab));
    b.setAttribute("aria-controls", `tab-${b.dataset.tab}`);
  }
  // The tab list as a screen reader and a keyboard expect it: arrows, Home and End.
  document.querySelector("[role=tablist]").addEventListener("keydown", (e) => {
    const tabs = [...document.querySelectorAll("[data-tab]")].filter((b) => !b.hidden);
    const at = tabs.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (to === undefined) return;
    e.preventDefault();
    const tab = tabs[(to + tabs.length) % tabs.length];
    showTab(tab.dataset.tab);
    tab.focus();
  });
  // A pinyin (or other) input method types letters before it gives the characters: search
  // when the composition ends, not on its letters.
  const searchSoon = (text) => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(text), 150);
  };
  $("search").addEventListener("input", (e) => {
    if (e.isComposing) return;
    searchSoon(e.target.value);
  });
  $("search").addEventListener("compositionend", (e) => searchSoon(e.target.value));
  $("search").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && results.length > 0) showBox(results[0]);
    if (e.key === "ArrowDown" && results.length > 0) {
      e.preventDefault();
      $("results").querySelector("button.result").focus();
    }
  });
  // Up and down through the results; Escape back to the search field.
  $("results").addEventListener("keydown", (e) => {
    const buttons = [...$("results").querySelectorAll("button.result")];
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    if (e.key === "Escape") $("search").focus();
    else if (e.key === "ArrowDown" && at + 1 < buttons.length) buttons[at + 1].focus();
    else if (e.key === "ArrowUp") (at > 0 ? buttons[at - 1] : $("search")).focus();
    else return;
    e.preventDefault();
  });
  for (const id of ["search-category", "search-range", "search-year"]) {
    $(id).addEventListener("change", () => runSearch($("search").value));
  }
  showRecentSearches();
  $("open-aisle").addEventListener("click", openAisle);
  $("sweep-form").addEventListener("submit", startSweep);
  $("sweep-cancel").addEventListener("click", cancelSweep);
  $("loan-form").addEventListener("submit", requestLoan);
  $("loan-kind").addEventListener("change", showLoanLimits);
  $("loan-filter").addEventListener("change", loadLoans);
  let whoTimer = null;
  $("loan-who").addEventListener("input", () => {
    clearTimeout(whoTimer);
    whoTimer = setTimeout(loadLoans, 250);
  });
  $("print-label").addEventListener("click", printLabel);
  $("open-record").addEventListener("click", () => {
    if (!state.focus) return;
    showTab("records");
    loadRecord(state.focus.archive_no);
  });
  $("record-find").addEventListener("submit", (e) => {
    e.preventDefault();
    loadRecord($("record-no").value);
  });
  $("record-form").addEventListener("submit", saveRecord);
  $("contents-form").addEventListener("submit", addDocument);
  $("contents-print").addEventListener("click", () => {
    const no = $("record").dataset.archiveNo;
    openFile(`/api/v1/boxes/${encodeURIComponent(no)}/contents?format=pdf`).catch((e) => {
      $("contents-error").textContent = e.message;
    });
  });
  $("transfer-form").addEventListener("submit", listTransfer);
  $("disposal-propose").addEventListener("click", proposeDisposal);
  $("register-csv").addEventListener("click", () => openFile("/api/v1/register?format=csv", "register.csv"));
  $("register-xlsx").addEventListener("click", () => openFile("/api/v1/register?format=xlsx", "register.xlsx"));
  $("lend-box").addEventListener("click", () => {
    if (!state.focus) return;
    const list = $("loan-boxes");
    if (!list.value.split(/[\s,;]+/).includes(state.focus.archive_no)) {
      list.value = `${list.value.trim()} ${state.focus.archive_no}`.trim();
    }
    showTab("loans");
  });
  for (const b of document.querySelectorAll("[data-span]")) {
    b.addEventListener("click", () => {
      state.span = b.dataset.span;
      renderEnvironment(true);
    });
  }

  // The demo's link carries the token in the fragment, which no server sees; keep it
  // out of the address bar and the history.
  const fragment = new URLSearchParams(location.hash.slice(1));
  const linked = fragment.get("token");
  if (linked) history.replaceState(null, "", location.pathname + location.search);
  sessionStorage.removeItem(TOKEN_KEY);
  await signIn(linked);
}

boot();
