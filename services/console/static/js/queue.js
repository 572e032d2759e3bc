// My queue: tasks assigned to me and every report waiting for a verdict, updated live.
// Keys on the list: up/down to pick; G genuine, P prank, I information, L link to another
// report (then pick it and Enter), D mark a task done. The reports offered to link to are
// intake's suggestions for this one (open incidents, nearest first); only the one its own
// linking rule names is chosen beforehand, any other the operator picks.

import { api, ApiError } from "./api.js";
import { $, debounce, fill, fillKeeping, h, inTextField, keepFocus, toast } from "./dom.js";
import { age, clock, label, lang, t } from "./i18n.js";

const data = {
  items: [], selected: null, detail: null, tasksAvailable: true, me: null,
  suggestions: null, // {report, items}: where the selected report may belong
  choice: null, // {report, target}: the operator's pick in the picker
};
let linkForm = null; // {signature, node}: kept across redraws while the same choices stand
let visible = false;

export function setMe(operatorId) { data.me = operatorId; }

export async function load() {
  const answer = await api("GET", "/api/queue");
  data.items = answer.items;
  data.tasksAvailable = answer.tasks_available;
  data.waiting = answer.waiting;
  if (!data.items.some((i) => i.key === data.selected)) data.selected = data.items[0]?.key ?? null;
  render();
  if (!visible || !data.selected) return;
  if (data.detail?.id !== selectedItem()?.report_id) await loadDetail();
  else await loadSuggestions(); // a report that arrived since may be the incident this one repeats
}

export const reload = debounce(() => load().catch(() => {}), 300);

export function show(on) {
  visible = on;
  if (on) { render(); loadDetail(); }
}

export function focus() { $("#queue-list").focus(); }

export function init() {
  $("#queue-list").addEventListener("keydown", onKey);
  $("#queue-detail").addEventListener("keydown", onKey);
}

export function onReport(message) {
  if (["received", "verified", "assigned", "task_closed", "linked", "unrouted", "stalled", "closed", "reopened"]
    .includes(message.event)) {
    reload();
  }
}

function count() {
  return data.items.filter((i) => i.mine || i.needs_verdict).length;
}

export function render() {
  const badge = $("#queue-count");
  badge.textContent = count() ? String(count()) : "";
  if (!visible) return;
  const waiting = data.waiting;
  $("#queue-totals").textContent = waiting ? t("queue.totals", waiting) : "";
  const note = $("#queue-note");
  note.hidden = data.tasksAvailable;
  note.textContent = data.tasksAvailable ? "" : t("queue.tasks_unavailable");
  const now = Date.now();
  if (!data.items.length) {
    fill($("#queue-list"), h("li", { class: "muted" }, t("queue.empty")));
    fill($("#queue-detail"));
    return;
  }
  fill($("#queue-list"), ...data.items.map((item) => h("li", {
    role: "option", "aria-selected": String(item.key === data.selected),
    dataset: { report: item.report_id, key: item.key },
    class: `${item.key === data.selected ? "on" : ""} ${item.mine ? "mine" : ""}`,
    onclick: () => select(item.key),
  },
    h("span", { class: `tag reason-${item.reason}` }, label("reason", item.reason)),
    item.mine ? h("span", { class: "tag mine" }, t("queue.mine")) : null,
    item.reason === "phone_agency" ? h("strong", { class: "agency-to-phone" }, `${label("agency", item.task?.detail?.agency)} · `) : null,
    h("strong", {}, label("category", item.category)), item.subtype ? ` · ${label("subtype", item.subtype)}` : "",
    h("div", { class: "muted" }, [item.kecamatan, label("channel", item.channel),
      t("queue.waiting", { age: age(now - Date.parse(item.received_at)) })].filter(Boolean).join(" · ")))));
  renderDetail();
}

async function select(key) {
  data.selected = key;
  render();
  await loadDetail();
}

async function loadDetail() {
  const item = selectedItem();
  if (!item) { data.detail = null; renderDetail(); return; }
  const wanted = data.selected;
  const [report, suggestions] = await Promise.all([
    api("GET", `/api/reports/${item.report_id}`).catch(() => null), fetchSuggestions(item)]);
  if (data.selected !== wanted) return;
  data.detail = report;
  data.suggestions = suggestions;
  renderDetail();
}

async function fetchSuggestions(item) {
  if (!item.needs_verdict) return null;
  const items = await api("GET", `/api/reports/${item.report_id}/link-suggestions`).catch(() => null);
  return items && { report: item.report_id, items };
}

async function loadSuggestions() {
  const item = selectedItem();
  if (!item) return;
  const suggestions = await fetchSuggestions(item);
  if (data.selected !== item.key) return;
  data.suggestions = suggestions;
  renderDetail();
}

function selectedItem() { return data.items.find((i) => i.key === data.selected); }

function renderDetail() {
  const panel = $("#queue-detail");
  const report = data.detail;
  const item = selectedItem();
  if (!visible) return;
  if (!report || !item || report.id !== item.report_id) return fill(panel, h("p", { class: "muted" }, t("queue.select")));
  const location = report.location || {};
  const pending = report.verification?.state === "pending";
  const nodes = [
    h("h2", {}, label("category", report.category), report.subtype ? ` · ${label("subtype", report.subtype)}` : ""),
    h("p", { class: "mono muted" }, report.id),
    pending ? h("p", { class: "tag warn" }, report.verification.required === "after_dispatch"
      ? t("queue.unverified_dispatched") : t("queue.held")) : null,
    item.reason === "phone_agency" ? h("div", { class: "phone-agency" },
      h("p", { class: "tag bad" }, t("queue.phone_agency", {
        agency: label("agency", item.task?.detail?.agency), why: item.task?.detail?.why || "" })),
      item.phones?.length ? h("p", { class: "phones" }, ...item.phones.map((number) => h("a", { href: `tel:${number}`, class: "mono" }, number)))
        : h("p", { class: "muted" }, t("queue.phone_agency.no_number")),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "primary", onclick: () => phoned("reached") }, h("kbd", {}, "R"), " ", t("queue.phone_agency.reached")),
        h("button", { type: "button", class: "bad", onclick: () => phoned("not_reached") }, h("kbd", {}, "N"), " ", t("queue.phone_agency.not_reached")))) : null,
    h("dl", {},
      h("dt", {}, t("queue.description")), h("dd", { class: "description" }, report.description || "—"),
      h("dt", {}, t("queue.caller")), h("dd", {}, [report.caller?.name, report.caller?.phone].filter(Boolean).join(" · ") || "—"),
      h("dt", {}, t("queue.location")), h("dd", {}, [location.address, location.desa, location.kecamatan].filter(Boolean).join(", ") || "—"),
      h("dt", {}, t("queue.channel")), h("dd", {}, `${label("channel", report.channel)} · ${label("status", report.status)}`)),
    pending ? h("div", { class: "actions verdicts" },
      h("button", { type: "button", class: "primary", dataset: { verdict: "genuine" }, onclick: () => verdict("genuine") },
        h("kbd", {}, "G"), " ", t("queue.genuine")),
      h("button", { type: "button", class: "bad", dataset: { verdict: "prank" }, onclick: () => verdict("prank") },
        h("kbd", {}, "P"), " ", t("queue.prank")),
      h("button", { type: "button", dataset: { verdict: "information" }, onclick: () => verdict("information") },
        h("kbd", {}, "I"), " ", t("queue.information"))) : null,
    pending ? linkPicker(report) : null,
    item.task?.task_id && item.reason !== "verify" && item.reason !== "phone_agency" ? h("div", { class: "actions" },
      h("button", { type: "button", onclick: closeTask }, h("kbd", {}, "D"), " ", t("queue.close_task"))) : null,
    h("h3", {}, t("queue.timeline")),
    h("ol", { class: "plain timeline" }, ...(report.timeline || []).map((entry) => h("li", {},
      `${clock(entry.at)} · ${label("event", entry.event)}${entry.agency ? ` · ${label("agency", entry.agency)}` : ""}`))),
  ].filter(Boolean);
  const keep = linkForm && nodes.includes(linkForm.node) ? linkForm.node : null;
  keepFocus(panel, () => fillKeeping(panel, nodes, keep));
}

// The picker for the verdict `duplicate`: the same form while the same reports are offered
// (redrawn, an open <select> would close and the choice be lost), a new one when they change.
function linkPicker(report) {
  const suggestions = data.suggestions?.report === report.id ? data.suggestions.items : [];
  const ruled = suggestions.find((s) => s.rule)?.report_id;
  const picked = data.choice?.report === report.id ? data.choice.target : null;
  const chosen = suggestions.some((s) => s.report_id === picked) ? picked : ruled ?? "";
  // Not the choice: the kept form shows the operator's own pick.
  const signature = JSON.stringify([lang(), report.id, suggestions.map((s) => [s.report_id, s.rule, s.callers])]);
  if (linkForm?.signature === signature) return linkForm.node;
  const submit = h("button", { type: "submit", id: "link-submit", dataset: { focus: "link-submit" }, disabled: !chosen },
    t("queue.duplicate"));
  const detail = h("p", { class: "link-detail", id: "link-detail" });
  const describe = (id) => {
    const s = suggestions.find((x) => x.report_id === id);
    fill(detail, s ? [s.rule ? `✓ ${t("queue.duplicate.rule", { why: label("linkrule", s.rule) })}` : null,
      t("queue.duplicate.apart", { m: Math.round(s.minutes_apart) }), s.subtype ? label("subtype", s.subtype) : null,
      t("call.incidents.callers", { n: s.callers + 1 }), s.description ? `“${s.description}”` : null]
      .filter(Boolean).join(" · ") : "");
  };
  describe(chosen);
  const node = h("form", { class: "link", id: "link-form", onsubmit: (e) => { e.preventDefault(); link(); } },
    h("label", { for: "link-target" }, h("kbd", {}, "L"), " ", t("queue.duplicate.choose")),
    suggestions.length ? h("select", {
      id: "link-target", dataset: { focus: "link-target" },
      onchange: (e) => {
        data.choice = { report: report.id, target: e.target.value };
        submit.disabled = !e.target.value;
        describe(e.target.value);
      },
    },
      chosen ? null : h("option", { value: "", disabled: true, selected: true }, t("queue.duplicate.pick")),
      ...suggestions.map((s) => h("option", { value: s.report_id, selected: s.report_id === chosen }, suggestionText(s))))
      : h("span", { class: "muted" }, t("queue.duplicate.none")),
    suggestions.length ? detail : null,
    submit);
  linkForm = { signature, node };
  return node;
}

// What tells one open incident from another in the list: the rule's, where, when, how far;
// the rest of the chosen one shows under the picker.
function suggestionText(s) {
  const where = [s.kecamatan, s.desa].filter(Boolean).join(", ");
  const metres = s.distance_m === null ? null : s.distance_m < 1000 ? `${Math.round(s.distance_m)} m`
    : `${(s.distance_m / 1000).toFixed(1)} km`;
  // The rule's first: the end of a long option is cut off in the closed picker.
  return `${s.rule ? "✓ " : ""}${[s.report_id.slice(0, 8), label("category", s.category), where || null,
    clock(s.received_at), metres].filter(Boolean).join(" · ")}`;
}

function onKey(event) {
  if (event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.target.id === "link-target") {
    // The picker's own keys: arrows and letters choose in it, Enter links.
    if (event.key === "Enter") { event.preventDefault(); link(); }
    return;
  }
  if (inTextField(event.target)) return;
  const index = data.items.findIndex((i) => i.key === data.selected);
  const key = event.key.toLowerCase();
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const next = data.items[Math.max(0, Math.min(data.items.length - 1, index + (event.key === "ArrowDown" ? 1 : -1)))];
    if (next) select(next.key);
  } else if (key === "g") { event.preventDefault(); verdict("genuine"); }
  else if (key === "p") { event.preventDefault(); verdict("prank"); }
  else if (key === "i") { event.preventDefault(); verdict("information"); }
  else if (key === "l") { event.preventDefault(); $("#link-target")?.focus(); }
  else if (key === "d") { event.preventDefault(); closeTask(); }
  else if (key === "r") { event.preventDefault(); phoned("reached"); }
  else if (key === "n") { event.preventDefault(); phoned("not_reached"); }
}

async function act(promise, done) {
  try {
    await promise;
    toast(done);
    data.detail = null;
    await load();
    focus();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    toast(t("error.generic", { detail: error.message }), "error");
    await load().catch(() => {});
  }
}

function verdict(kind) {
  if (data.detail?.verification?.state !== "pending") return;
  act(api("POST", `/api/reports/${selectedItem().report_id}/verification`, { verdict: kind }),
    t("queue.done", { verdict: label("verdict", kind) }));
}

function link() {
  const target = $("#link-target")?.value;
  if (!target) return;
  act(api("POST", `/api/reports/${selectedItem().report_id}/verification`, { verdict: "duplicate", duplicate_of: target }),
    t("queue.done", { verdict: label("verdict", "duplicate") }));
}

function phoned(outcome) {
  const item = selectedItem();
  if (!item?.task?.task_id || item.reason !== "phone_agency") return;
  act(api("POST", `/api/tasks/${item.task.task_id}/phone-call`, { outcome }),
    t("queue.done", { verdict: t(`queue.phone_agency.${outcome}`) }));
}

function closeTask() {
  const item = selectedItem();
  if (!item?.task?.task_id || item.reason === "verify" || item.reason === "phone_agency") return;
  act(api("POST", `/api/tasks/${item.task.task_id}/close`, {}), t("queue.done", { verdict: t("queue.close_task") }));
}
