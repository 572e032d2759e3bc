// Dispatch board: open reports, each agency's state and the time since its last step;
// late agencies (past their acknowledgement deadline, unacknowledged) stand out.

import { api } from "./api.js";
import { $, debounce, fill, h } from "./dom.js";
import { age, clock, label, t } from "./i18n.js";
import { applyRouted, applyStep, isLate, lastStep, merge, sortRows } from "./board-model.js";

export const data = { rows: [], deadlines: {}, loaded: false, deadlinesKnown: true };
let visible = false;

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
  if (["received", "routed", "verified", "linked", "unlinked", "unrouted", "stalled"].includes(message.event)) reload();
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
  if (!rows.length) return fill($("#board-rows"), h("tr", {}, h("td", { colspan: 2, class: "muted" }, t("board.empty"))));
  fill($("#board-rows"), ...rows.map((row) => renderRow(row, now)));
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
      row.linked_reports ? h("span", { class: "tag" }, t("board.linked", { n: row.linked_reports })) : null),
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
