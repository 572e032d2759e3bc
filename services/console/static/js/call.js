// Take a call: a form for speed, used from the keyboard alone.
//   phone -> Enter -> category (1-6) -> subtype (a number) -> kecamatan (type, Enter)
//   -> desa -> address -> details (Enter sends). Ctrl+Enter sends from anywhere.
//   D/P/K/I in the phone field or on the category: kind of contact (emergency, prank,
//   silent, information); a non-emergency jumps to the send button: P, Enter logs a prank.
//   Esc starts a new form.
// The call's clock runs from the first key pressed in the form (F2 at pickup, before
// anything is typed); it goes with the report as call_started_at. While the call is
// taken the page looks up the caller's history by the number and the open incidents the
// call may be another caller of; an incident that appeared since the operator last
// looked holds the send for one more Enter.

import { api, ApiError } from "./api.js";
import { $, $$, debounce, fill, h, toast } from "./dom.js";
import { kecamatanMatches } from "./typeahead.js";
import { label, lang, t } from "./i18n.js";

const LOOKUP_DELAY_MS = 400; // after the last key: one lookup per number typed, not per digit
const SEEN_MS = 1000; // an incident on screen for less than this before the send has not been looked at
const CHECK_TIMEOUT_MS = 1500; // the check before sending never holds a call back longer
const SHOWN_INCIDENTS = 3;
const IDLE_KEYS = new Set(["Escape", "Tab", "Shift", "Control", "Alt", "AltGraph", "Meta", "CapsLock"]);

let catalog = null;
let state = null;
const myCalls = []; // {id, kind, category, status, at}

// crypto.randomUUID needs a secure context; a console on the centre's LAN over http has none.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fresh() {
  return {
    kind: "emergency", category: null, subtype: null, key: newKey(), suggestion: 0,
    startedAt: null, startedMono: 0, // wall clock for the report, monotonic for the timer
    caller: null, // the lookup of the number typed: {typed, history, recent}
    incidents: { query: null, items: [] }, // open incidents this call may be another caller of
    seen: new Map(), // report id -> when it was first on screen (performance.now)
    warned: null, // the query the operator was warned about: the next send goes out
  };
}

export function init(data) {
  catalog = data;
  state = fresh();
  const form = $("#call-form");
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  form.addEventListener("keydown", onFormKey);
  // Before the fields' own handlers (which may take the key): any key starts the call's clock.
  form.addEventListener("keydown", (event) => { if (!IDLE_KEYS.has(event.key)) startCall(); }, true);
  form.addEventListener("pointerdown", startCall);
  form.addEventListener("input", startCall);
  $("#call-start").addEventListener("click", () => { startCall(); focus(); });
  $("#call-phone").addEventListener("keydown", onPhoneKey);
  $("#call-phone").addEventListener("input", onPhoneInput);
  $("#call-category").addEventListener("keydown", onCategoryKey);
  $("#call-subtype").addEventListener("keydown", onSubtypeKey);
  const kecamatan = $("#call-kecamatan");
  kecamatan.addEventListener("input", () => { state.suggestion = 0; renderSuggestions(); onPlaceChange(); });
  kecamatan.addEventListener("keydown", onKecamatanKey);
  kecamatan.addEventListener("blur", () => setTimeout(() => hideSuggestions(), 150));
  $("#call-desa").addEventListener("keydown", (e) => enterMoves(e, "#call-address"));
  $("#call-desa").addEventListener("input", onPlaceChange);
  $("#call-address").addEventListener("keydown", (e) => enterMoves(e, "#call-casualties"));
  $("#call-casualties").addEventListener("keydown", (e) => enterMoves(e, "#call-description"));
  $("#call-description").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey) { e.preventDefault(); submit(); }
  });
  render();
}

export function focus() { $("#call-phone").focus(); }

export function render() {
  if (!catalog) return;
  fill($("#call-kinds"), h("legend", {}, t("call.kind")), ...catalog.kinds.map((kind) =>
    h("label", { class: `kind ${state.kind === kind.code ? "on" : ""}`, dataset: { kind: kind.code } },
      h("input", { type: "radio", name: "kind", value: kind.code, checked: state.kind === kind.code,
        onchange: () => setKind(kind.code, false) }),
      h("kbd", {}, kind.key.toUpperCase()), " ", label("kind", kind.code))));
  fill($("#call-category"), ...catalog.categories.map((category) =>
    h("button", { type: "button", role: "radio", tabindex: "-1", "aria-checked": String(state.category === category.code),
      class: state.category === category.code ? "on" : "", dataset: { category: category.code },
      onclick: () => chooseCategory(category.code) },
      h("kbd", {}, category.key), " ", label("category", category.code))));
  const subtypes = currentSubtypes();
  fill($("#call-subtype"), ...subtypes.map((code, index) =>
    h("button", { type: "button", role: "radio", tabindex: "-1", "aria-checked": String(state.subtype === code),
      class: state.subtype === code ? "on" : "", dataset: { subtype: code }, onclick: () => chooseSubtype(code) },
      h("kbd", {}, String(index + 1)), " ", label("subtype", code))));
  $("#call-form").classList.toggle("noise", state.kind !== "emergency");
  renderTimer();
  renderCaller();
  renderIncidents();
  renderMine();
}

function renderSubmit() {
  const noise = state.kind !== "emergency";
  const warned = !noise && state.warned !== null && state.warned === incidentQuery();
  $("#call-submit").textContent = noise ? t("call.submit.noise", { kind: label("kind", state.kind) })
    : warned ? t("call.submit.confirm") : t("call.submit");
  $("#call-submit").classList.toggle("noise", noise);
  $("#call-submit").classList.toggle("confirm", warned);
}

function currentSubtypes() {
  return catalog.categories.find((c) => c.code === state.category)?.subtypes ?? [];
}

function setKind(kind, jump = true) {
  state.kind = kind;
  onPlaceChange();
  render();
  if (jump && kind !== "emergency") $("#call-submit").focus();
}

function kindForKey(key) {
  return catalog.kinds.find((k) => k.key === key.toLowerCase())?.code;
}

function onPhoneKey(event) {
  if (event.key === "Enter" && !event.ctrlKey) { event.preventDefault(); $("#call-category").focus(); return; }
  // A phone number has no letters: these are the kind-of-contact keys.
  if (event.key.length === 1 && /[a-z]/i.test(event.key) && !event.ctrlKey && !event.altKey && !event.metaKey) {
    event.preventDefault();
    const kind = kindForKey(event.key);
    if (kind) setKind(kind);
  }
}

function onCategoryKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey) return;
  const category = catalog.categories.find((c) => c.key === event.key);
  if (category) { event.preventDefault(); chooseCategory(category.code); return; }
  const kind = event.key.length === 1 ? kindForKey(event.key) : null;
  if (kind) { event.preventDefault(); setKind(kind); }
}

function chooseCategory(code) {
  state.category = code;
  state.subtype = null;
  if (state.kind !== "emergency") state.kind = "emergency";
  onPlaceChange();
  render();
  $("#call-subtype").focus();
}

function onSubtypeKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.key === "Backspace") { event.preventDefault(); $("#call-category").focus(); return; }
  const index = Number.parseInt(event.key, 10);
  const subtypes = currentSubtypes();
  if (index >= 1 && index <= subtypes.length) { event.preventDefault(); chooseSubtype(subtypes[index - 1]); }
}

function chooseSubtype(code) {
  state.subtype = code;
  render();
  $("#call-kecamatan").focus();
}

function suggestions() {
  return kecamatanMatches(catalog.kecamatan, $("#call-kecamatan").value);
}

function renderSuggestions() {
  const list = $("#call-kecamatan-list");
  const input = $("#call-kecamatan");
  const matches = input.value.trim() ? suggestions() : [];
  const exact = matches.length === 1 && matches[0].toLowerCase() === input.value.trim().toLowerCase();
  if (!matches.length || exact) return hideSuggestions();
  state.suggestion = Math.min(state.suggestion, matches.length - 1);
  fill(list, ...matches.map((name, index) => h("li", {
    role: "option", id: `kecamatan-${name}`, "aria-selected": String(index === state.suggestion),
    class: index === state.suggestion ? "on" : "", onmousedown: () => acceptKecamatan(name),
  }, name)));
  list.hidden = false;
  input.setAttribute("aria-expanded", "true");
  input.setAttribute("aria-activedescendant", `kecamatan-${matches[state.suggestion]}`);
}

function hideSuggestions() {
  $("#call-kecamatan-list").hidden = true;
  $("#call-kecamatan").setAttribute("aria-expanded", "false");
}

function acceptKecamatan(name) {
  $("#call-kecamatan").value = name;
  hideSuggestions();
  onPlaceChange();
  $("#call-desa").focus();
}

function onKecamatanKey(event) {
  const matches = suggestions();
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    state.suggestion = (state.suggestion + step + matches.length) % Math.max(matches.length, 1);
    renderSuggestions();
  } else if ((event.key === "Enter" || event.key === "Tab") && !event.ctrlKey && !event.shiftKey) {
    if (matches.length && $("#call-kecamatan").value.trim()) {
      event.preventDefault();
      acceptKecamatan(matches[Math.min(state.suggestion, matches.length - 1)]);
    } else if (event.key === "Enter") {
      event.preventDefault();
      $("#call-desa").focus();
    }
  }
}

function enterMoves(event, next) {
  if (event.key === "Enter" && !event.ctrlKey) { event.preventDefault(); $(next).focus(); }
}

function onFormKey(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submit(); }
  if (event.key === "Escape") { event.preventDefault(); reset(); }
}

export function reset() {
  $("#call-form").reset();
  stopClock();
  lookupSeq++; // answers still on their way are for the call just finished
  incidentSeq++;
  state = fresh();
  clearErrors();
  hideSuggestions();
  render();
  focus();
}

function clearErrors() {
  for (const el of $$(".field-error", $("#call-form"))) el.textContent = "";
  for (const el of $$("[aria-invalid]", $("#call-form"))) el.removeAttribute("aria-invalid");
  $("#call-error").textContent = "";
}

function formBody() {
  const value = (id) => $(id).value.trim() || null;
  const casualties = value("#call-casualties");
  return {
    kind: state.kind, category: state.category, subtype: state.subtype,
    phone: value("#call-phone"), caller_name: value("#call-caller-name"),
    kecamatan: value("#call-kecamatan"), desa: value("#call-desa"), address: value("#call-address"),
    description: value("#call-description"), casualties: casualties === null ? null : Number(casualties),
    // The same instant on every retry, so a resend after a lost answer is the same body (Idempotency-Key).
    call_started_at: state.startedAt ? state.startedAt.toISOString() : null,
  };
}

// Intake refused only the start time: this machine's clock is off. The call matters more.
function onlyStartRefused(error) {
  const fields = error instanceof ApiError && error.status === 422 ? error.problem.errors || [] : [];
  return fields.length > 0 && fields.every((e) => e.field === "call_started_at");
}

let sending = false;
async function submit() {
  if (sending) return;
  sending = true;
  clearErrors();
  try {
    if (!(await incidentsChecked())) return;
    const body = formBody();
    let answer;
    let startDropped = false;
    try {
      answer = await api("POST", "/api/calls", body, { idempotencyKey: state.key });
    } catch (error) {
      if (!onlyStartRefused(error)) throw error;
      delete body.call_started_at;
      startDropped = true;
      answer = await api("POST", "/api/calls", body, { idempotencyKey: state.key });
    }
    myCalls.unshift({ id: answer.id, kind: answer.kind, category: body.category, status: answer.status,
      at: answer.received_at, flagged: answer.caller_flagged });
    if (myCalls.length > 15) myCalls.pop();
    const text = answer.kind !== "emergency" ? t("call.sent.noise", { kind: label("kind", answer.kind) })
      : answer.linked_to ? t("call.sent.linked", { id: answer.id.slice(0, 8), incident: answer.linked_to.slice(0, 8) })
        : t("call.sent", { id: answer.id.slice(0, 8), status: label("status", answer.status) });
    const notes = [text, answer.caller_flagged ? t("call.flagged") : null, startDropped ? t("call.start_dropped") : null];
    toast(notes.filter(Boolean).join(" "), answer.caller_flagged || startDropped ? "warn" : "ok");
    reset();
  } catch (error) {
    showError(error);
  } finally {
    sending = false;
  }
}

function showError(error) {
  if (!(error instanceof ApiError)) throw error;
  const fields = error.problem.errors || [];
  let first = null;
  for (const { field, message } of fields) {
    const slot = $(`.field-error[data-for="${CSS.escape(field)}"]`, $("#call-form"));
    if (slot) {
      slot.textContent = message;
      const input = $(`[name="${CSS.escape(field)}"]`, $("#call-form")) ||
        (field === "category" ? $("#call-category") : null);
      if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
    }
  }
  $("#call-error").textContent = fields.length ? `${t("call.invalid")} ${error.problem.detail || ""}` :
    error.status === 0 ? t("error.network") : t("error.generic", { detail: error.message });
  (first || $("#call-phone")).focus();
}

// Live: the status of the calls I filed.
export function onReport(message) {
  if (["closed", "reopened"].includes(message.event)) {
    // The incident and its callers: mine may be one of them.
    for (const call of myCalls.filter((c) => [message.report_id, ...message.linked_reports].includes(c.id))) {
      call.status = message.event;
      call.agency = null;
    }
    renderMine();
    return;
  }
  const call = myCalls.find((c) => c.id === message.report_id);
  if (!call) return;
  if (["routed", "linked", "unrouted", "verified"].includes(message.event)) call.status = message.event;
  renderMine();
}

export function onDispatch(message) {
  const call = myCalls.find((c) => c.id === message.report_id);
  if (!call) return;
  call.status = message.step;
  call.agency = message.agency;
  renderMine();
}

function renderMine() {
  const list = $("#my-calls");
  if (!myCalls.length) return fill(list, h("li", { class: "muted" }, t("call.mine.empty")));
  fill(list, ...myCalls.map((call) => h("li", { dataset: { report: call.id } },
    h("span", { class: "mono" }, call.id.slice(0, 8)), " ",
    call.kind === "emergency" ? label("category", call.category) : label("kind", call.kind), " · ",
    h("span", { class: "status" }, call.agency ? `${label("agency", call.agency)}: ${label("state", call.status)}`
      : label("status", call.status)))));
}

// The call's clock.
let clockTimer = null;

function startCall() {
  if (state.startedAt) return;
  state.startedAt = new Date();
  state.startedMono = performance.now();
  clockTimer = setInterval(renderTimer, 250);
  renderTimer();
}

function stopClock() {
  clearInterval(clockTimer);
  clockTimer = null;
}

function renderTimer() {
  const seconds = state.startedAt ? Math.floor((performance.now() - state.startedMono) / 1000) : 0;
  const timer = $("#call-timer");
  timer.textContent = `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(seconds % 60).padStart(2, "0")}`;
  timer.dataset.running = String(Boolean(state.startedAt));
  $("#call-start").hidden = Boolean(state.startedAt);
}

// "4 menit lalu": how long ago, coarse (a contact or an incident, not a stopwatch).
function ago(minutes) {
  if (minutes < 1) return t("ago.now");
  if (minutes < 60) return t("ago.m", { n: Math.floor(minutes) });
  if (minutes < 48 * 60) return t("ago.h", { n: Math.floor(minutes / 60) });
  return t("ago.d", { n: Math.floor(minutes / (24 * 60)) });
}

function distance(metres) {
  const number = new Intl.NumberFormat(lang() === "id" ? "id-ID" : "en-GB", { maximumFractionDigits: 1 });
  return metres < 1000 ? `${number.format(Math.round(metres))} m` : `${number.format(metres / 1000)} km`;
}

function place(item) {
  return [item.kecamatan, item.desa].filter(Boolean).join(", ");
}

// The caller's history, looked up as the number is typed. A number is personal data: it
// goes to the console only in a POST body and stays in this page.
let lookupSeq = 0;
const lookupSoon = debounce(() => lookup(), LOOKUP_DELAY_MS);

function plausiblePhone(text) {
  const digits = text.replace(/\D/g, "");
  return /^\+?[\d\s().-]+$/.test(text) && digits.length >= 9 && digits.length <= 15;
}

function onPhoneInput() {
  lookupSeq++;
  if (state.caller) { state.caller = null; renderCaller(); } // it was another number's
  if (plausiblePhone($("#call-phone").value.trim())) lookupSoon();
}

async function lookup() {
  const phone = $("#call-phone").value.trim();
  if (!plausiblePhone(phone)) return;
  const seq = ++lookupSeq;
  let found = null;
  try {
    found = await api("POST", "/api/callers/lookup", { phone });
  } catch (error) {
    if (!(error instanceof ApiError)) throw error; // 422: not a number after all; nothing to show
  }
  if (seq !== lookupSeq || $("#call-phone").value.trim() !== phone) return;
  state.caller = found?.recent?.length ? { typed: phone, history: found.history, recent: found.recent } : null;
  renderCaller();
}

function renderCaller() {
  const box = $("#call-history");
  const caller = state.caller;
  box.hidden = !caller;
  if (!caller) return fill(box);
  const { contacts, pranks, period_days: days, flagged } = caller.history;
  box.classList.toggle("flagged", flagged);
  const now = Date.now();
  fill(box,
    h("p", { class: "summary" }, flagged ? h("strong", {}, t("call.flagged"), " ") : null,
      [t("call.history.summary", { contacts, days }), pranks ? t("call.history.pranks", { pranks }) : null]
        .filter(Boolean).join(" · ")),
    h("ul", { class: "recent" }, ...caller.recent.slice(0, 3).map((contact) => h("li", { class: `kind-${contact.kind}` },
      contact.kind === "emergency" && contact.category ? label("category", contact.category) : label("kind", contact.kind),
      " · ", label("status", contact.status), " · ", ago((now - Date.parse(contact.received_at)) / 60000)))));
}

// Open incidents the call may be another caller of (intake's suggestions), once the
// category and the kecamatan are known; the desa narrows them and lets intake's own
// linking rule name the one the call will be linked to.
let incidentSeq = 0;
const incidentsSoon = debounce(() => loadIncidents(), LOOKUP_DELAY_MS);

function canonicalKecamatan(text) {
  const wanted = text.trim().toLowerCase();
  return wanted ? catalog.kecamatan.find((name) => name.toLowerCase() === wanted) ?? null : null;
}

function incidentQuery() {
  if (state.kind !== "emergency" || !state.category) return null;
  const kecamatan = canonicalKecamatan($("#call-kecamatan").value);
  if (!kecamatan) return null;
  const params = new URLSearchParams({ category: state.category, kecamatan });
  const desa = $("#call-desa").value.trim();
  if (desa) params.set("desa", desa);
  return params.toString();
}

function onPlaceChange() {
  const query = incidentQuery();
  if (query === null) {
    incidentSeq++;
    if (state.incidents.query !== null) showIncidents(null, []);
    return;
  }
  if (query !== state.incidents.query) incidentsSoon();
}

function fetchIncidents(query) {
  return api("GET", `/api/link-suggestions?${query}`);
}

async function loadIncidents() {
  const query = incidentQuery();
  if (query === null) return;
  const seq = ++incidentSeq;
  let items = [];
  try {
    items = await fetchIncidents(query);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
  if (seq !== incidentSeq || incidentQuery() !== query) return;
  showIncidents(query, items);
}

function showIncidents(query, items) {
  const now = performance.now();
  for (const item of items.slice(0, SHOWN_INCIDENTS)) if (!state.seen.has(item.report_id)) state.seen.set(item.report_id, now);
  state.incidents = { query, items: items.slice(0, SHOWN_INCIDENTS) };
  renderIncidents();
}

// Before sending: the incidents as they are now. One the operator has not had on screen
// (it appeared since the last look, or a moment ago) is shown and the send waits for one
// more Enter; with nothing new it goes at once. A slow or failing check sends anyway.
async function incidentsChecked() {
  const query = incidentQuery();
  if (query === null || state.warned === query) return true;
  let items;
  try {
    items = await Promise.race([fetchIncidents(query),
      new Promise((_, reject) => setTimeout(() => reject(new Error("timeout")), CHECK_TIMEOUT_MS))]);
  } catch {
    return true;
  }
  const now = performance.now();
  const unseen = items.slice(0, SHOWN_INCIDENTS).some((item) => {
    const shownAt = state.seen.get(item.report_id);
    return shownAt === undefined || now - shownAt < SEEN_MS;
  });
  incidentSeq++; // a debounced answer still on its way is older than this one
  if (unseen) state.warned = query;
  showIncidents(query, items);
  if (unseen) {
    $("#toast").hidden = true; // the last call's "sent" would sit over the warning
    $("#call-warning").scrollIntoView({ block: "nearest" });
  }
  return !unseen;
}

function renderIncidents() {
  const items = state.incidents.items;
  $("#call-incidents").hidden = !items.length;
  fill($("#call-incidents-list"), ...items.map((item) => h("li", {
    class: item.rule ? "rule" : "", dataset: { report: item.report_id, rule: item.rule || "" },
  },
    h("div", {}, h("strong", {}, label("category", item.category)), item.subtype ? ` · ${label("subtype", item.subtype)}` : "",
      " · ", place(item) || "—"),
    h("div", { class: "muted" }, [ago(item.minutes_apart), t("call.incidents.callers", { n: item.callers + 1 }),
      item.distance_m === null ? null : distance(item.distance_m)].filter(Boolean).join(" · ")),
    item.description ? h("div", { class: "snippet" }, item.description) : null,
    item.rule ? h("p", { class: "rule-note" }, t("call.incidents.rule", { why: label("linkrule", item.rule) })) : null)));
  const rule = items.find((item) => item.rule);
  const warned = state.warned !== null && state.warned === incidentQuery();
  const warning = $("#call-warning");
  fill(warning,
    warned ? h("strong", {}, t("call.warning.unseen")) : null,
    rule ? h("span", {}, t("call.warning.rule", {
      incident: `${rule.report_id.slice(0, 8)} (${label("category", rule.category)} · ${place(rule)})` })) : null);
  warning.hidden = !warned && !rule;
  warning.classList.toggle("warned", warned);
  renderSubmit();
}
