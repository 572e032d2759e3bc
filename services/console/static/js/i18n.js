// Strings live in one dictionary per language (/static/i18n/<lang>.json); Bahasa
// Indonesia is the default and the fallback for a key missing in English.

const LANGS = ["id", "en"];
const STORAGE_KEY = "e112.console.lang";
const dictionaries = {};
let current = "id";

export function lang() { return current; }

export async function load(wanted) {
  const chosen = LANGS.includes(wanted) ? wanted : (localStorage.getItem(STORAGE_KEY) || "id");
  for (const code of new Set(["id", chosen])) {
    if (!dictionaries[code]) {
      const response = await fetch(`/static/i18n/${code}.json`, { cache: "no-cache" });
      dictionaries[code] = await response.json();
    }
  }
  current = chosen;
  localStorage.setItem(STORAGE_KEY, chosen);
  document.documentElement.lang = chosen;
  apply(document);
  return chosen;
}

export function other() { return current === "id" ? "en" : "id"; }

export function t(key, vars = {}) {
  const text = dictionaries[current]?.[key] ?? dictionaries.id?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

// A code shown to people: t("category.kebakaran"), or the code itself if unknown.
export function label(prefix, code) {
  if (code === null || code === undefined) return "";
  const key = `${prefix}.${code}`;
  const text = t(key);
  return text === key ? String(code) : text;
}

export function apply(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  document.title = t("app.title");
}

// "3 mnt 05 dtk": how long ago, for the board and the queue.
export function age(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  if (h > 0) return t("age.h", { h, m: String(m).padStart(2, "0") });
  if (m > 0) return t("age.m", { m, s });
  return t("age.s", { s: total % 60 });
}

// Counts as people read them: "4.000" in Bahasa Indonesia, "4,000" in English.
export function number(n) {
  return new Intl.NumberFormat(current === "id" ? "id-ID" : "en-GB").format(n);
}

// Clock times in the centre's own zone, whatever the machine's.
export function clock(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(current === "id" ? "id-ID" : "en-GB", {
    hour: "2-digit", minute: "2-digit", timeZone: "Asia/Jakarta",
  }).format(new Date(iso));
}

// Day and time, for what may be days old (the history): "28 Nov 14.05".
export function dateTime(iso) {
  if (!iso) return "";
  return new Intl.DateTimeFormat(current === "id" ? "id-ID" : "en-GB", {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", timeZone: "Asia/Jakarta",
  }).format(new Date(iso));
}
