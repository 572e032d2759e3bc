// Take a call: a form for speed, used from the keyboard alone.
//   phone -> Enter -> category (1-6) -> subtype (a number) -> kecamatan (type, Enter)
//   -> desa -> address -> details (Enter sends). Ctrl+Enter sends from anywhere.
//   D/P/K/I in the phone field or on the category: kind of contact (emergency, prank,
//   silent, information); a non-emergency jumps to the send button: P, Enter logs a prank.
//   Esc starts a new form.

import { api, ApiError } from "./api.js";
import { $, $$, fill, h, toast } from "./dom.js";
import { kecamatanMatches } from "./typeahead.js";
import { label, t } from "./i18n.js";

let catalog = null;
let state = null;
const myCalls = []; // {id, kind, category, status, at}

// crypto.randomUUID needs a secure context; a console on the centre's LAN over http has none.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fresh() {
  return { kind: "emergency", category: null, subtype: null, key: newKey(), suggestion: 0 };
}

export function init(data) {
  catalog = data;
  state = fresh();
  const form = $("#call-form");
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(); });
  form.addEventListener("keydown", onFormKey);
  $("#call-phone").addEventListener("keydown", onPhoneKey);
  $("#call-category").addEventListener("keydown", onCategoryKey);
  $("#call-subtype").addEventListener("keydown", onSubtypeKey);
  const kecamatan = $("#call-kecamatan");
  kecamatan.addEventListener("input", () => { state.suggestion = 0; renderSuggestions(); });
  kecamatan.addEventListener("keydown", onKecamatanKey);
  kecamatan.addEventListener("blur", () => setTimeout(() => hideSuggestions(), 150));
  $("#call-desa").addEventListener("keydown", (e) => enterMoves(e, "#call-address"));
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
  const noise = state.kind !== "emergency";
  $("#call-submit").textContent = noise ? t("call.submit.noise", { kind: label("kind", state.kind) }) : t("call.submit");
  $("#call-submit").classList.toggle("noise", noise);
  $("#call-form").classList.toggle("noise", noise);
  renderMine();
}

function currentSubtypes() {
  return catalog.categories.find((c) => c.code === state.category)?.subtypes ?? [];
}

function setKind(kind, jump = true) {
  state.kind = kind;
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
  };
}

let sending = false;
async function submit() {
  if (sending) return;
  sending = true;
  clearErrors();
  const body = formBody();
  try {
    const answer = await api("POST", "/api/calls", body, { idempotencyKey: state.key });
    myCalls.unshift({ id: answer.id, kind: answer.kind, category: body.category, status: answer.status,
      at: answer.received_at, flagged: answer.caller_flagged });
    if (myCalls.length > 15) myCalls.pop();
    const text = answer.kind === "emergency"
      ? t("call.sent", { id: answer.id.slice(0, 8), status: label("status", answer.status) })
      : t("call.sent.noise", { kind: label("kind", answer.kind) });
    toast(answer.caller_flagged ? `${text} ${t("call.flagged")}` : text, answer.caller_flagged ? "warn" : "ok");
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
