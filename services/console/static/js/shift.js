// Shift panel: who is on duty and free or busy; my check-in, break and check-out; the
// coverage warning (also shown under the header on every screen).

import { api, ApiError } from "./api.js";
import { $, debounce, fill, h, toast } from "./dom.js";
import { clock, label, t } from "./i18n.js";

const data = { shift: null };
let visible = false;

export async function load() {
  data.shift = await api("GET", "/api/shift");
  render();
}

export const reload = debounce(() => load().catch(() => {}), 300);

export function show(on) { visible = on; render(); } // the header's warning, too

export function onShift() { reload(); }

// The shortage now, and since when it was alerted.
function coverageText(shift) {
  const since = shift.coverage_alert ? t("shift.coverage.since", { time: clock(shift.coverage_alert.since) }) : "";
  if (shift.understaffed) {
    return `${t("shift.coverage", { present: shift.checked_in_for_shift, needed: shift.shift.operators_needed })} ${since}`;
  }
  if (shift.coverage_alert) {
    return t("shift.coverage.alert", { time: clock(shift.coverage_alert.since),
      reason: label("coverage", shift.coverage_alert.reason) });
  }
  return "";
}

export function render() {
  const shift = data.shift;
  if (!shift) return;
  const warning = coverageText(shift);
  const banner = $("#coverage-banner");
  banner.textContent = warning;
  banner.hidden = !warning || visible; // the panel says it on this screen
  if (!visible) return;
  $("#shift-now").textContent = t("shift.now", { shift: label("shiftcode", shift.shift.code),
    from: clock(shift.shift.starts_at), to: clock(shift.shift.ends_at) });
  const coverage = $("#shift-coverage");
  coverage.textContent = warning;
  coverage.hidden = !warning;
  const me = shift.me;
  $("#shift-me").textContent = me.on_duty
    ? `${label("opstatus", me.status)} · ${t("shift.checked_in_at", { time: clock(me.checked_in_at) })}`
    : label("opstatus", "offline");
  const button = (key, action) => h("button", { type: "button", class: action === "check-out" || action === "break" ? "" : "primary",
    dataset: { action }, onclick: () => act(action) }, t(key));
  const actions = [];
  if (!me.on_duty) actions.push(button("shift.check_in", "check-in"));
  if (me.on_duty && me.status === "available") actions.push(button("shift.break", "break"));
  if (me.on_duty && me.status === "break") actions.push(button("shift.end_break", "available"));
  if (me.on_duty) actions.push(button("shift.check_out", "check-out"));
  if (me.on_duty && me.status === "handling_report") actions.push(h("small", {}, t("shift.busy_hint")));
  fill($("#shift-actions"), ...actions);
  const person = (o) => h("li", { dataset: { operator: o.id } }, h("strong", {}, o.name), " · ",
    h("span", { class: `tag ${o.status === "available" ? "ok" : "busy"}` },
      o.status === "available" ? t("shift.free") : t("shift.busy")),
    " ", label("opstatus", o.status));
  const list = (id, items, render) => fill($(id), ...(items.length ? items.map(render) : [h("li", { class: "muted" }, t("shift.nobody"))]));
  const leaving = new Set(shift.leaving.map((o) => o.id));
  list("#shift-on-duty", shift.operators.filter((o) => !leaving.has(o.id)), person);
  list("#shift-missing", shift.missing, (r) => h("li", {}, r.name));
  list("#shift-leaving", shift.leaving, person);
}

async function act(action) {
  try {
    if (action === "check-in" || action === "check-out") await api("POST", `/api/shift/${action}`, {});
    else await api("PUT", "/api/shift/status", { status: action });
    await load();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    toast(t("error.generic", { detail: error.message }), "error");
  }
}
