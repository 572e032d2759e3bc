// Dispatch board: open reports, each agency's state and the time since its last step;
// late agencies (past their acknowledgement deadline, unacknowledged) stand out. Each
// row closes its incident: "Tutup insiden" opens a small form under it (the outcome, a
// note; Enter closes, Esc cancels) and the row leaves the board.

import { api, ApiError } from "./api.js";
import { $, debounce, fill, fillKeeping, h, keepFocus, toast } from "./dom.js";
import { age, clock, label, lang, t } from "./i18n.js";
import { applyRouted, applyStep, isLate, lastStep, merge, sortRows } from "./board-model.js";

export const OUTCOMES = ["resolved", "false_alarm", "handed_over", "no_action_needed"];
export const data = { rows: [], deadlines: {}, loaded: false, deadlinesKnown: true };
let visible = false;
// The open close form: { reportId, form (its <tr>), lang }; one at a time.
let closing = null;

export async function load() {
  const answer = await api("GET", "/api/board");
  data.rows = merge(data.rows, answer.rows);
  data.deadlines = answer.deadlines;
  data.deadlinesKnown = answer.deadlines_known;
  data.loaded = true;
  render();
}

export const reload = debounce(() => load().catch(() => {}), 400);

export function show(on) { visible = on; if (on) render(); }

export function lateCount(now = Date.now()) {
  return data.rows.reduce((n, row) => n + row.agencies.filter((a) => isLate(a, now)).length, 0);
}

export function onDispatch(message) {
  const row = data.rows.find((r) => r.report_id === message.report_id);
  if (!row || !applyStep(row, message)) { reload(); return; }
  render();
}

export function onReport(message) {
  const row = data.rows.find((r) => r.report_id === message.report_id);
  if (message.event === "routed" && row) { applyRouted(row, message, data.deadlines); render(); return; }
  if (["received", "routed", "verified", "linked", "unlinked", "unrouted", "stalled", "closed", "reopened"]
    .includes(message.event)) reload();
}

export function render() {
  const count = lateCount();
  const badge = $("#late-count");
  badge.textContent = count ? t("board.late_count", { n: count }) : "";
  badge.hidden = !count;
  if (!visible) return;
  const now = Date.now();
  const note = $("#board-note");
  note.hidden = data.deadlinesKnown;
  note.textContent = data.deadlinesKnown ? "" : t("board.deadlines_unknown");
  const rows = sortRows(data.rows, now);
  const body = $("#board-rows");
  if (closing && !rows.some((r) => r.report_id === closing.reportId)) closing = null; // closed elsewhere
  if (!rows.length) return fill(body, h("tr", {}, h("td", { colspan: 2, class: "muted" }, t("board.empty"))));
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
  const order = sortRows(data.rows, Date.now()).map((r) => r.report_id);
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
