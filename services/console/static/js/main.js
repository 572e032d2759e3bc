// The console page: sign-in, the five screens, the header (with the pipeline banner),
// the live connection.

import { api, ApiError, setCsrf } from "./api.js";
import { $, $$, fill, h, inTextField, toast } from "./dom.js";
import * as i18n from "./i18n.js";
import { t } from "./i18n.js";
import * as board from "./board.js";
import * as call from "./call.js";
import * as history from "./history.js";
import * as live from "./live.js";
import * as pipeline from "./pipeline.js";
import * as queue from "./queue.js";
import * as shift from "./shift.js";

const SCREENS = { call, queue, board, history, shift };
let session = null;
let source = null;
let current = "call";
let ticker = null;

async function boot() {
  await i18n.load();
  $("#lang").addEventListener("click", async () => { await i18n.load(i18n.other()); rerender(); });
  $("#signout").addEventListener("click", signOut);
  $("#signin-form").addEventListener("submit", signIn);
  document.addEventListener("signedout", () => showSignIn(t("error.session")));
  for (const button of $$("#nav button")) button.addEventListener("click", () => go(button.dataset.screen));
  document.addEventListener("keydown", onGlobalKey);
  try {
    session = await api("GET", "/api/session");
    await start();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    await showSignIn();
  }
}

async function showSignIn(message = "") {
  session = null;
  source?.close();
  clearInterval(ticker);
  pipeline.stop();
  for (const el of $$(".screen")) el.hidden = true;
  $("#nav").hidden = $("#signout").hidden = $("#live").hidden = true;
  $("#me").textContent = "";
  $("#signin").hidden = false;
  $("#signin-error").textContent = message;
  const select = $("#signin-operator");
  const operators = await api("GET", "/api/operators").catch(() => []);
  fill(select, h("option", { value: "" }, t("signin.choose")),
    ...operators.map((o) => h("option", { value: o.handle }, o.name)));
  if (!operators.length) $("#signin-error").textContent = t("signin.none");
  select.focus();
}

async function signIn(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    session = await api("POST", "/api/session", { handle: form.get("handle"), pin: form.get("pin") });
    event.target.reset();
    await start();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    $("#signin-error").textContent = error.status === 401 ? t("signin.failed") : error.message;
    $("#signin-pin").value = "";
    $("#signin-pin").focus();
  }
}

async function signOut() {
  await api("DELETE", "/api/session").catch(() => {});
  await showSignIn();
}

async function start() {
  setCsrf(session.csrf_token);
  queue.setMe(session.operator.id);
  $("#signin").hidden = true;
  $("#nav").hidden = $("#signout").hidden = $("#live").hidden = false;
  $("#me").textContent = session.operator.name;
  if (!start.done) {
    const catalog = await api("GET", "/api/catalog");
    call.init(catalog);
    board.init(catalog);
    queue.init();
    history.init();
    start.done = true;
  }
  go("call");
  source = live.connect({
    status: (on) => { setLive(on); if (!on) pipeline.poll(); }, // the feed lost: the banner may say why
    resync: () => { reloadAll(); pipeline.poll(); },
    report: (m) => { call.onReport(m); queue.onReport(m); board.onReport(m); history.onReport(m); },
    dispatch: (m) => { call.onDispatch(m); board.onDispatch(m); },
    shift: () => { shift.onShift(); queue.reload(); },
  });
  pipeline.start();
  clearInterval(ticker);
  let seconds = 0;
  ticker = setInterval(() => {
    board.render(); // ages and lateness move with the clock
    if (++seconds % session.refresh_seconds === 0) reloadAll(); // a safety net for anything the live feed missed
  }, 1000);
}

function reloadAll() {
  board.load().catch(() => {});
  queue.load().catch(() => {});
  shift.load().catch(() => {});
  history.resync();
}

function setLive(on) {
  const el = $("#live");
  el.textContent = on ? t("live.on") : t("live.off");
  el.className = `live ${on ? "on" : "off"}`;
  el.dataset.live = String(on);
}

function go(name) {
  current = name;
  for (const [screen, module] of Object.entries(SCREENS)) {
    $(`#screen-${screen}`).hidden = screen !== name;
    module.show?.(screen === name);
  }
  for (const button of $$("#nav button")) {
    button.classList.toggle("on", button.dataset.screen === name);
    button.setAttribute("aria-current", button.dataset.screen === name ? "page" : "false");
  }
  if (name === "call") call.focus();
  if (name === "queue") queue.focus();
}

// Esc anywhere but the call form: back to taking a call (a new call is ringing).
function onGlobalKey(event) {
  if (!session) return;
  if (event.key === "Escape" && current !== "call" && !inTextField(event.target)) {
    event.preventDefault();
    go("call");
  }
}

function rerender() {
  for (const module of Object.values(SCREENS)) module.render?.();
  pipeline.render();
  setLive($("#live").dataset.live === "true");
  if ($("#signin").hidden === false) showSignIn($("#signin-error").textContent);
}

boot().catch((error) => toast(t("error.generic", { detail: error.message }), "error"));
