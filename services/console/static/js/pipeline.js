// The degraded-pipeline banner, under the header on every screen: what the services
// themselves report is wrong (services/console/pipeline.py), in words, so a call taker
// knows when a report will not reach an agency by itself (phone it). Asked every 10 s
// while signed in and when the live feed comes back; hidden while all is well.

import { api } from "./api.js";
import { $, fill, h } from "./dom.js";
import { label, lang, number, t } from "./i18n.js";

const EVERY_MS = 10_000;
let timer = null;
let answer = null;
let asking = false;
let shown = null; // what the banner says now: redrawn (and announced) only when that changes

export function start() {
  stop();
  timer = setInterval(poll, EVERY_MS);
  poll();
}

export function stop() {
  clearInterval(timer);
  timer = null;
  answer = null;
  render();
}

export async function poll() {
  if (asking || timer === null) return;
  asking = true;
  try {
    const fresh = await api("GET", "/api/pipeline");
    if (timer !== null) answer = fresh; // signed out meanwhile: nothing to show
  } catch {
    return; // the console itself did not answer: the live indicator says so; the last word stays
  } finally {
    asking = false;
  }
  render();
}

// One item in words: "Layanan notifier tidak siap: broker".
export function describe(item) {
  const service = label("pipeline.service", item.service);
  switch (item.code) {
    case "service_down": return t("pipeline.service_down", { service });
    case "service_not_ready":
      return t("pipeline.service_not_ready", { service,
        checks: (item.checks || []).map((c) => label("pipeline.check", c)).join(", ") });
    case "behind": return t("pipeline.behind", { group: label("pipeline.group", item.group), events: number(item.events) });
    case "agency_unreachable": return t("pipeline.agency_unreachable", { agency: label("agency", item.agency) });
    case "stalled": return t("pipeline.stalled", { n: number(item.reports) });
    default: return t("pipeline.unknown", { code: item.code });
  }
}

export function render() {
  const banner = $("#pipeline-banner");
  const items = answer && !answer.ok ? answer.items : [];
  const texts = items.map(describe);
  const key = texts.length ? `${lang()}|${texts.join("|")}` : "";
  if (key === shown) return;
  shown = key;
  banner.hidden = !texts.length;
  if (!texts.length) return fill(banner);
  fill(banner, h("strong", {}, t("pipeline.title")),
    h("ul", {}, items.map((item, i) => h("li", { dataset: { code: item.code } }, texts[i]))));
}
