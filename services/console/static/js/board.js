// Dispatch board: open incidents, newest first, a page at a time ("Tampilkan lebih
// banyak" appends the next), filtered by category, kecamatan and state (or late only),
// with totals that count every open incident and every late dispatch, not just the rows
// shown. Each agency's state and the time since its last step; late agencies (past their
// acknowledgement deadline, unacknowledged) stand out. Each row closes its incident:
// "Tutup insiden" opens a small form under it (the outcome, a note; Enter closes, Esc
// cancels) and the row leaves the board.

import { api, ApiError } from "./api.js";
import { $, debounce, fill, fillKeeping, h, keepFocus, toast } from "./dom.js";
import { age, clock, label, lang, number, t } from "./i18n.js";
import {
  applyRouted, applyStep, isLate, lastStep, lateDispatches, lateTotals, merge, sortRows, withFirstPage,
} from "./board-model.js";

export const OUTCOMES = ["resolved", "false_alarm", "handed_over", "no_action_needed"];
// Intake's statuses of an open incident, in the order an incident goes through them
// (services/console/board_api.py: BOARD_STATES).
export const STATES = ["awaiting_verification", "received", "unrouted", "routed", "delivered", "delivery_failed",
  "acknowledged", "responding", "done"];
// rows: the pages loaded so far; totals: the server's, for the whole filter; lateSeen:
// the late dispatches among the rows when those totals came (board-model.js lateTotals).
export const data = {
  rows: [], deadlines: {}, loaded: false, deadlinesKnown: true, cursor: null, pages: 0, totals: null,
  lateSeen: new Map(),
};
const filters = { category: "", kecamatan: "", state: "" };
let catalog = null;
let filtersLang = null;
let visible = false;
// The open close form: { reportId, form (its <tr>), lang }; one at a time.
let closing = null;
// Answers may come back out of order: an older one never replaces a newer one, and one
// asked under other filters is dropped.
let asked = 0;
let applied = 0;
let generation = 0;

export function init(forms) {
  catalog = forms;
  for (const name of Object.keys(filters)) {
    $(`#board-${name}`).addEventListener("change", (event) => setFilter(name, event.target.value));
  }
  $("#board-more").addEventListener("click", () => more().catch(failed));
  renderFilters();
}

function failed(error) {
  if (!(error instanceof ApiError)) throw error;
  toast(t("error.generic", { detail: error.message }), "error");
}

function query(cursor) {
  const params = new URLSearchParams(Object.entries(filters).filter(([, value]) => value));
  if (cursor) params.set("cursor", cursor);
  const text = params.toString();
  return `/api/board${text ? `?${text}` : ""}`;
}

const filtered = () => Object.values(filters).some(Boolean);

// The first page again, the pages opened with "more" kept below it.
export async function load() {
  const mine = ++asked;
  const era = generation;
  const answer = await api("GET", query());
  if (era !== generation || mine < applied) return;
  applied = mine;
  const keepOlder = data.pages > 1 && Boolean(answer.next_cursor);
  data.rows = sortRows(withFirstPage(data.rows, merge(data.rows, answer.rows), keepOlder));
  if (!keepOlder) {
    data.cursor = answer.next_cursor;
    data.pages = 1;
  }
  accept(answer);
}

async function more() {
  if (!data.cursor) return;
  const button = $("#board-more");
  const era = generation;
  button.disabled = true;
  let answer;
  try {
    answer = await api("GET", query(data.cursor));
  } finally {
    button.disabled = false;
  }
  if (era !== generation) return;
  const known = new Set(data.rows.map((r) => r.report_id));
  const added = answer.rows.filter((r) => !known.has(r.report_id));
  data.rows = sortRows([...data.rows, ...added]);
  data.cursor = answer.next_cursor;
  data.pages += 1;
  accept(answer);
  // The button is gone on the last page: the focus goes to the first incident it brought.
  if (!data.cursor && added.length) $(`#board-rows [data-focus="close:${added[0].report_id}"]`)?.focus();
}

function accept(answer) {
  data.deadlines = answer.deadlines;
  data.deadlinesKnown = answer.deadlines_known;
  data.totals = answer.totals;
  data.lateSeen = lateDispatches(data.rows, Date.now());
  data.loaded = true;
  render();
}

function setFilter(name, value) {
  if (filters[name] === value) return;
  filters[name] = value;
  generation += 1;
  // The rows shown stay until the new first page replaces them (no empty flash).
  data.pages = 0;
  data.cursor = null;
  load().catch(failed);
}

// One reload at a time; what comes in meanwhile is one more after it.
let running = null;
let again = false;
function refresh() {
  if (running) { again = true; return; }
  running = load().catch(() => {}).finally(() => {
    running = null;
    if (again) { again = false; refresh(); }
  });
}

// Many live events, one reload; under a steady stream, one every two seconds at least.
export const reload = debounce(refresh, 400, 2000);

export function show(on) { visible = on; if (on) render(); }

function late(now) {
  const totals = data.totals;
  return totals && lateTotals({ late: totals.late, by_agency: totals.late_by_agency }, data.lateSeen, data.rows, now);
}

// Late dispatches in the whole centre (null: the notifier did not say).
export function lateCount(now = Date.now()) { return late(now)?.late ?? null; }

// A report the filters leave out changes neither the rows nor the totals.
function wanted(message) {
  const place = (message.kecamatan || "").toLowerCase();
  return message.kind === "emergency" && (!filters.category || message.category === filters.category) &&
    (!filters.kecamatan || place === filters.kecamatan.toLowerCase());
}

export function onDispatch(message) {
  const row = data.rows.find((r) => r.report_id === message.report_id);
  if (row && applyStep(row, message)) render();
  // Another page's incident, or the incident's status moved: the totals (and, under a
  // state filter, the rows) follow from a reload.
  reload();
}

export function onReport(message) {
  const row = data.rows.find((r) => r.report_id === message.report_id);
  if (message.event === "routed" && row) { applyRouted(row, message, data.deadlines); render(); }
  if (message.event === "closed" && row) { // it leaves at once, whatever page it is on
    data.rows = data.rows.filter((r) => r.report_id !== message.report_id);
    render();
  }
  if (message.event === "received" && !wanted(message)) return;
  if (["received", "routed", "verified", "linked", "unlinked", "unrouted", "stalled", "closed", "reopened"]
    .includes(message.event)) reload();
}

function renderFilters() {
  if (!catalog || filtersLang === lang()) return;
  filtersLang = lang();
  const options = (select, all, items) => {
    fill(select, h("option", { value: "" }, all), ...items.map(([value, text]) => h("option", { value }, text)));
    select.value = filters[select.name];
  };
  options($("#board-category"), t("board.filter.all_categories"),
    catalog.categories.map((c) => [c.code, label("category", c.code)]));
  options($("#board-kecamatan"), t("board.filter.all_kecamatan"), catalog.kecamatan.map((k) => [k, k]));
  options($("#board-state"), t("board.filter.all_states"),
    [["late", t("board.filter.late")], ...STATES.map((s) => [s, label("status", s)])]);
}

function renderTotals(lateNow) {
  const totals = data.totals;
  const line = $("#board-totals");
  const statuses = $("#board-statuses");
  if (!totals) { fill(line); fill(statuses); return; }
  const agencies = Object.entries(lateNow?.byAgency || {}).sort((a, b) => b[1] - a[1])
    .map(([agency, n]) => `${label("agency", agency)} ${number(n)}`).join(", ");
  fill(line,
    h("strong", {}, t(filtered() ? "board.totals.open_filtered" : "board.totals.open", { n: number(totals.open) })),
    " · ",
    lateNow === null ? h("span", { class: "unknown", dataset: { late: "unknown" } }, t("board.totals.late_unknown"))
      // The notifier counts late dispatches in the whole centre, whatever the filter.
      : h("span", { class: lateNow.late ? "late" : "", dataset: { late: String(lateNow.late) } },
        t(filtered() ? "board.totals.late_all" : "board.totals.late", { n: number(lateNow.late) }),
        agencies ? ` (${agencies})` : ""));
  fill(statuses, ...STATES.filter((s) => totals.by_status[s]).flatMap((s, i) => [
    i ? " · " : "", h("span", { dataset: { status: s } }, `${label("status", s)} ${number(totals.by_status[s])}`)]));
}

function renderShown() {
  const more = $("#board-more");
  more.hidden = !data.cursor;
  const totals = data.totals;
  let text = "";
  if (totals && data.rows.length) {
    if (filters.state === "late") text = t("board.shown_late", { shown: number(data.rows.length) });
    else {
      const of = filters.state ? totals.by_status[filters.state] || 0 : totals.open;
      text = t("board.shown", { shown: number(data.rows.length), of: number(Math.max(of, data.rows.length)) });
    }
  }
  $("#board-shown").textContent = text;
}

export function render() {
  const now = Date.now();
  const lateNow = late(now);
  const badge = $("#late-count");
  const count = lateNow?.late;
  badge.textContent = lateNow === null ? (data.loaded ? t("board.late_count_unknown") : "")
    : count ? t("board.late_count", { n: number(count) }) : "";
  badge.hidden = !badge.textContent;
  if (!visible) return;
  renderFilters();
  renderTotals(lateNow);
  renderShown();
  const note = $("#board-note");
  note.hidden = data.deadlinesKnown;
  note.textContent = data.deadlinesKnown ? "" : t("board.deadlines_unknown");
  const rows = data.rows;
  const body = $("#board-rows");
  if (closing && !rows.some((r) => r.report_id === closing.reportId)) closing = null; // closed elsewhere
  if (!rows.length) {
    const empty = !data.loaded ? "" : filtered() ? t("board.empty_filtered") : t("board.empty");
    return fill(body, h("tr", {}, h("td", { colspan: 2, class: "muted" }, empty)));
  }
  if (closing && closing.lang !== lang()) relabel();
  keepFocus(body, () => fillKeeping(body, rows.flatMap((row) => {
    const tr = renderRow(row, now);
    return closing?.reportId === row.report_id ? [tr, closing.form] : [tr];
  }), closing?.form));
}

function renderRow(row, now) {
  const late = row.agencies.some((a) => isLate(a, now));
  return h("tr", { class: late ? "late" : "", dataset: { report: row.report_id } },
    h("td", { class: "report" },
      h("strong", {}, label("category", row.category)), row.subtype ? ` · ${label("subtype", row.subtype)}` : "",
      h("div", {}, [row.kecamatan, row.desa].filter(Boolean).join(", ")),
      h("div", { class: "muted" }, h("span", { class: "mono" }, row.report_id.slice(0, 8)), " · ",
        t("board.received", { age: age(now - Date.parse(row.received_at)) })),
      row.unverified ? h("span", { class: "tag warn" }, t("board.unverified")) : null,
      row.linked_reports ? h("span", { class: "tag" }, t("board.linked", { n: row.linked_reports })) : null,
      h("div", { class: "row-actions" }, h("button", {
        type: "button", class: "close-incident", onclick: () => openClose(row.report_id),
        dataset: { focus: `close:${row.report_id}` }, "aria-expanded": String(closing?.reportId === row.report_id),
        "aria-controls": closing?.reportId === row.report_id ? `close-form-${row.report_id}` : null,
      }, t("board.close")))),
    h("td", { class: "agencies" },
      row.agencies.length ? row.agencies.map((agency) => renderAgency(agency, now))
        : h("span", { class: "muted" }, t("board.waiting_route"))));
}

function renderAgency(agency, now) {
  const late = isLate(agency, now);
  const step = lastStep(agency);
  const title = Object.entries(agency.steps || {}).map(([s, at]) => `${label("state", s)} ${clock(at)}`).join("\n") +
    (agency.ack_due_at ? `\n${t("board.deadline", { time: clock(agency.ack_due_at) })}` : "");
  return h("div", {
    class: `agency state-${agency.state} ${late ? "late" : ""} ${agency.escalated ? "escalated" : ""} ${agency.role}`,
    title, dataset: { agency: agency.agency, state: agency.state },
  },
    h("span", { class: "name" }, label("agency", agency.agency)),
    h("span", { class: "state" }, label("state", agency.state)),
    // The time since the last step, named when it is not the state itself (a re-send).
    step ? h("span", { class: "since" }, step[0] === agency.state ? age(now - Date.parse(step[1]))
      : `${label("state", step[0])} ${age(now - Date.parse(step[1]))}`) : null,
    agency.escalated ? h("span", { class: "tag bad" }, label("state", "escalated")) : null,
    late ? h("span", { class: "tag bad" }, t("board.late")) : null);
}

function closeRow(reportId) {
  const id = `close-form-${reportId}`;
  const form = h("form", { id, class: "close-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); confirmClose(); } },
    h("div", { class: "field" },
      h("label", { for: `${id}-outcome` }, t("board.close.outcome")),
      h("select", { id: `${id}-outcome`, name: "outcome", required: true, "aria-describedby": `${id}-error` },
        h("option", { value: "" }, t("board.close.choose")),
        ...OUTCOMES.map((o) => h("option", { value: o }, label("outcome", o))))),
    h("div", { class: "field grow" },
      h("label", { for: `${id}-note` }, t("board.close.note"), " ", h("em", {}, t("call.optional"))),
      h("input", { id: `${id}-note`, name: "note", maxlength: 500, autocomplete: "off" })),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "bad" }, t("board.close.confirm")),
      h("button", { type: "button", onclick: cancelClose }, t("form.cancel")),
      h("small", {}, t("board.close.hint"))),
    h("p", { class: "error", id: `${id}-error`, role: "alert" }));
  form.addEventListener("keydown", onCloseKey);
  form.addEventListener("input", () => { $(".error", form).textContent = ""; }); // said, and acted on
  return h("tr", { class: "closing", dataset: { closing: reportId } }, h("td", { colspan: 2 }, form));
}

// The other language: the form built again with what was chosen and typed.
function relabel() {
  const old = closing.form;
  closing.form = closeRow(closing.reportId);
  for (const selector of ["select", "input", ".error"]) {
    const [from, to] = [$(selector, old), $(selector, closing.form)];
    if (selector === ".error") to.textContent = from.textContent;
    else to.value = from.value;
  }
  closing.lang = lang();
}

function openClose(reportId) {
  if (closing?.reportId !== reportId) closing = { reportId, form: closeRow(reportId), lang: lang() };
  render();
  $("select", closing.form).focus();
}

function onCloseKey(event) {
  if (event.key === "Escape") {
    // Here Esc cancels the form only, not the whole screen (main.js: back to taking a call).
    event.preventDefault();
    event.stopPropagation();
    cancelClose();
  } else if (event.key === "Enter" && event.target instanceof HTMLSelectElement) {
    event.preventDefault(); // a <select> does not submit on Enter by itself
    event.currentTarget.requestSubmit();
  }
}

function cancelClose() {
  const reportId = closing?.reportId;
  closing = null;
  render();
  $(`#board-rows [data-focus="close:${reportId}"]`)?.focus();
}

async function confirmClose() {
  if (closing.busy) return; // Enter on the <select> submits even while the buttons are disabled
  const state = closing;
  const { reportId, form } = state;
  const outcome = $("select", form).value;
  const note = $("input", form).value.trim();
  const error = $(".error", form);
  if (!outcome) { error.textContent = t("board.close.needs_outcome"); $("select", form).focus(); return; }
  // Where the focus goes once the row has left: the next row's close button.
  const order = data.rows.map((r) => r.report_id);
  const next = order[order.indexOf(reportId) + 1] ?? order[order.indexOf(reportId) - 1];
  state.busy = true;
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    await api("POST", `/api/reports/${reportId}/close`, { outcome, note: note || null });
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    // A 409 says why (another caller's report, awaiting a verdict, closed already).
    error.textContent = failure.status === 409 ? failure.message : t("error.generic", { detail: failure.message });
    for (const button of form.querySelectorAll("button")) button.disabled = false;
    state.busy = false;
    return;
  }
  toast(t("board.closed", { outcome: label("outcome", outcome) }));
  if (closing?.reportId === reportId) closing = null;
  data.rows = data.rows.filter((r) => r.report_id !== reportId);
  render();
  await load().catch(() => {});
  if (next) $(`#board-rows [data-focus="close:${next}"]`)?.focus();
}
