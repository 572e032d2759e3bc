// History: closed incidents, newest first (by when they were received), a page at a
// time. Each can be reopened: "Buka lagi" asks for the reason (Enter reopens, Esc
// cancels) and the incident is back on the dispatch board, with its callers.

import { api, ApiError } from "./api.js";
import { $, debounce, fill, fillKeeping, h, keepFocus, toast } from "./dom.js";
import { dateTime, label, lang, t } from "./i18n.js";
import * as board from "./board.js";
import { newer } from "./board-model.js";

const COLUMNS = 6;
const data = { items: [], cursor: null, pages: 0, loaded: false };
let visible = false;
// The open reopen form: { reportId, form (its <tr>), lang }; one at a time.
let reopening = null;

// Keyset order, as intake pages (the board's): newest received first, then the higher id.
const older = (a, b) => newer(b, a);

export async function load() {
  const page = await api("GET", "/api/history");
  const last = page.items.at(-1);
  if (data.pages > 1 && page.next_cursor && last) {
    // The pages opened with "more" stay: what the first page covers now is replaced,
    // what lies beyond it is kept, and so is the cursor after it.
    const fresh = new Set(page.items.map((i) => i.report_id));
    data.items = [...page.items, ...data.items.filter((i) => !fresh.has(i.report_id) && older(i, last))];
  } else {
    data.items = page.items;
    data.cursor = page.next_cursor;
    data.pages = 1;
  }
  data.loaded = true;
  render();
}

export const reload = debounce(() => load().catch(() => {}), 400);

export function init() {
  $("#history-more").addEventListener("click", () => more().catch((error) => {
    if (!(error instanceof ApiError)) throw error;
    toast(t("error.generic", { detail: error.message }), "error");
  }));
}

export function show(on) {
  visible = on;
  if (on) { render(); load().catch(() => {}); }
}

export function resync() { if (data.loaded) reload(); }

export function onReport(message) {
  if (!data.loaded || !["closed", "reopened"].includes(message.event)) return;
  if (message.event === "reopened") {
    data.items = data.items.filter((i) => i.report_id !== message.report_id);
    render();
  }
  reload();
}

async function more() {
  if (!data.cursor) return;
  const page = await api("GET", `/api/history?cursor=${encodeURIComponent(data.cursor)}`);
  const known = new Set(data.items.map((i) => i.report_id));
  const added = page.items.filter((i) => !known.has(i.report_id));
  data.items.push(...added);
  data.cursor = page.next_cursor;
  data.pages += 1;
  render();
  // The button is gone on the last page: the focus goes to the first incident it brought.
  if (!data.cursor && added.length) $(`#history-rows [data-focus="reopen:${added[0].report_id}"]`)?.focus();
}

export function render() {
  if (!visible) return;
  const body = $("#history-rows");
  $("#history-more").hidden = !data.cursor;
  if (reopening && !data.items.some((i) => i.report_id === reopening.reportId)) reopening = null;
  if (!data.items.length) {
    return fill(body, h("tr", {}, h("td", { colspan: COLUMNS, class: "muted" }, data.loaded ? t("history.empty") : "")));
  }
  if (reopening && reopening.lang !== lang()) relabel();
  keepFocus(body, () => fillKeeping(body, data.items.flatMap((item) => {
    const tr = renderItem(item);
    return reopening?.reportId === item.report_id ? [tr, reopening.form] : [tr];
  }), reopening?.form));
}

function renderItem(item) {
  const open = reopening?.reportId === item.report_id;
  return h("tr", { dataset: { report: item.report_id } },
    h("td", {},
      h("strong", {}, label("category", item.category)), item.subtype ? ` · ${label("subtype", item.subtype)}` : "",
      h("div", { class: "muted mono" }, item.report_id.slice(0, 8))),
    h("td", {}, [item.kecamatan, item.desa].filter(Boolean).join(", ") || "—"),
    h("td", { class: "when" }, dateTime(item.received_at)),
    h("td", { class: "when" }, dateTime(item.closed_at)),
    h("td", {}, h("span", { class: `tag outcome-${item.close_outcome}`, dataset: { outcome: item.close_outcome } },
      label("outcome", item.close_outcome))),
    h("td", { class: "row-actions" }, h("button", {
      type: "button", class: "reopen", onclick: () => openReopen(item.report_id),
      dataset: { focus: `reopen:${item.report_id}` }, "aria-expanded": String(open),
      "aria-controls": open ? `reopen-form-${item.report_id}` : null,
    }, t("history.reopen"))));
}

function reopenRow(reportId) {
  const id = `reopen-form-${reportId}`;
  const form = h("form", { id, class: "reopen-form", novalidate: true, onsubmit: (e) => { e.preventDefault(); confirmReopen(); } },
    h("div", { class: "field grow" },
      h("label", { for: `${id}-reason` }, t("history.reopen.reason")),
      h("input", { id: `${id}-reason`, name: "reason", maxlength: 500, required: true, autocomplete: "off",
        "aria-describedby": `${id}-error` })),
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, t("history.reopen")),
      h("button", { type: "button", onclick: cancelReopen }, t("form.cancel")),
      h("small", {}, t("history.reopen.hint"))),
    h("p", { class: "error", id: `${id}-error`, role: "alert" }));
  form.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    // Here Esc cancels the form only, not the whole screen (main.js: back to taking a call).
    event.preventDefault();
    event.stopPropagation();
    cancelReopen();
  });
  form.addEventListener("input", () => { $(".error", form).textContent = ""; }); // said, and acted on
  return h("tr", { class: "reopening", dataset: { reopening: reportId } }, h("td", { colspan: COLUMNS }, form));
}

// The other language: the form built again with what was typed.
function relabel() {
  const old = reopening.form;
  reopening.form = reopenRow(reopening.reportId);
  $("input", reopening.form).value = $("input", old).value;
  $(".error", reopening.form).textContent = $(".error", old).textContent;
  reopening.lang = lang();
}

function openReopen(reportId) {
  if (reopening?.reportId !== reportId) reopening = { reportId, form: reopenRow(reportId), lang: lang() };
  render();
  $("input", reopening.form).focus();
}

function cancelReopen() {
  const reportId = reopening?.reportId;
  reopening = null;
  render();
  $(`#history-rows [data-focus="reopen:${reportId}"]`)?.focus();
}

async function confirmReopen() {
  if (reopening.busy) return;
  const state = reopening;
  const { reportId, form } = state;
  const reason = $("input", form).value.trim();
  const error = $(".error", form);
  if (!reason) { error.textContent = t("history.reopen.needs_reason"); $("input", form).focus(); return; }
  const ids = data.items.map((i) => i.report_id);
  const next = ids[ids.indexOf(reportId) + 1] ?? ids[ids.indexOf(reportId) - 1];
  state.busy = true;
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  try {
    await api("POST", `/api/reports/${reportId}/reopen`, { reason });
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    error.textContent = failure.status === 409 ? failure.message : t("error.generic", { detail: failure.message });
    for (const button of form.querySelectorAll("button")) button.disabled = false;
    state.busy = false;
    return;
  }
  toast(t("history.reopened"));
  if (reopening?.reportId === reportId) reopening = null;
  data.items = data.items.filter((i) => i.report_id !== reportId);
  render();
  board.reload();
  ($(`#history-rows [data-focus="reopen:${next}"]`) || $("#history-more:not([hidden])"))?.focus();
}
