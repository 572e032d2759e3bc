// Building the page's elements. Text always goes in as text (textContent), never as
// HTML: report descriptions come from the public and must not become markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// fill(), but `keep` (an open inline form, one of `nodes`) never leaves the page: taken
// out and put back it would lose the focus, close an open <select> and drop the caret.
// The board redraws every second while an operator types in such a form.
export function fillKeeping(el, nodes, keep) {
  const at = keep ? nodes.indexOf(keep) : -1;
  if (at < 0 || keep.parentNode !== el) return fill(el, ...nodes);
  for (const child of [...el.children]) if (child !== keep) child.remove();
  keep.before(...nodes.slice(0, at));
  keep.after(...nodes.slice(at + 1));
  return el;
}

// After a redraw: the focus back on the element that had it, found again by its
// data-focus key (the redraw made new elements).
export function keepFocus(root, redraw) {
  const key = root.contains(document.activeElement) ? document.activeElement.dataset.focus : undefined;
  redraw();
  if (key && !root.contains(document.activeElement)) {
    root.querySelector(`[data-focus="${CSS.escape(key)}"]`)?.focus({ preventScroll: true });
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

// A key press meant for the page, not typed into a field.
export function inTextField(target) {
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ||
    target instanceof HTMLSelectElement;
}

let toastTimer = null;
export function toast(text, kind = "ok") {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = `toast ${kind}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 4000);
}

// Run `fn` once after calls stop for `ms` (many live events, one reload); with `maxMs`,
// at least that often while they do not stop (a steady stream of reports would
// otherwise hold the reload back for as long as it lasts).
export function debounce(fn, ms, maxMs = Infinity) {
  let timer = null;
  let first = null;
  return (...args) => {
    clearTimeout(timer);
    first ??= Date.now();
    const wait = Math.max(0, Math.min(ms, first + maxMs - Date.now()));
    timer = setTimeout(() => { first = null; fn(...args); }, wait);
  };
}
