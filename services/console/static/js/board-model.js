// The dispatch board's rows as data: live steps applied in place, lateness. The server
// builds the rows (services/console/board.py); this keeps them current between reloads.
// A dispatch only moves forward, as in intake (services/intake/status.py), so a reload
// older than an event already applied cannot undo it.

export const RANK = { requested: 0, failed: 1, delivered: 2, acknowledged: 3, on_the_way: 4, on_scene: 5, done: 6 };
const ACKNOWLEDGED = new Set(["acknowledged", "on_the_way", "on_scene", "done"]);
const CLOSED = new Set(["done", "cancelled"]);

export function forward(current, next) {
  if (current === "cancelled") return current;
  if (next === "cancelled") return current === "done" ? current : next;
  if (!(next in RANK)) return current;
  return RANK[next] >= (RANK[current] ?? -1) ? next : current;
}

// Apply a dispatch step; false when the row does not know the dispatch (reload it).
export function applyStep(row, message) {
  const agency = row.agencies.find((a) => a.dispatch_id === message.dispatch_id);
  if (!agency) return false;
  agency.steps[message.step] ??= message.at;
  if (message.step === "escalated") agency.escalated = true;
  agency.state = forward(agency.state, message.step);
  return true;
}

// report.routed: the row gains its agencies, requested now.
export function applyRouted(row, message, deadlines) {
  for (const dispatch of message.dispatches) {
    if (row.agencies.some((a) => a.dispatch_id === dispatch.dispatch_id)) continue;
    const seconds = deadlines[dispatch.agency];
    row.agencies.push({
      dispatch_id: dispatch.dispatch_id, agency: dispatch.agency, role: dispatch.role, state: "requested",
      escalated: false, steps: { requested: message.at },
      ack_due_at: seconds ? new Date(Date.parse(message.at) + seconds * 1000).toISOString() : null,
    });
  }
  if (row.status === "received") row.status = "routed";
}

export function isLate(agency, now) {
  return Boolean(agency.ack_due_at) && !ACKNOWLEDGED.has(agency.state) && !CLOSED.has(agency.state) &&
    now >= Date.parse(agency.ack_due_at);
}

// The latest step and when it happened: "acknowledged, 1 min 20 s".
export function lastStep(agency) {
  let best = null;
  for (const [step, at] of Object.entries(agency.steps || {})) {
    if (!best || Date.parse(at) >= Date.parse(best[1])) best = [step, at];
  }
  return best;
}

// A reload merged with what live events already showed.
export function merge(oldRows, newRows) {
  const old = new Map(oldRows.map((r) => [r.report_id, r]));
  for (const row of newRows) {
    const before = old.get(row.report_id);
    if (!before) continue;
    for (const agency of row.agencies) {
      const seen = before.agencies.find((a) => a.dispatch_id === agency.dispatch_id);
      if (!seen) continue;
      agency.state = forward(agency.state, seen.state);
      agency.steps = { ...seen.steps, ...agency.steps };
      agency.escalated = agency.escalated || seen.escalated;
    }
  }
  return newRows;
}

// Keyset order, as intake pages: newest received first, then the higher id. The late
// ones stand out by their colour; they are not moved up (the `late` filter lists them).
export function newer(a, b) {
  const [at, bt] = [instant(a.received_at), instant(b.received_at)];
  return at > bt || (at === bt && a.report_id > b.report_id);
}

// Microseconds since the epoch, as PostgreSQL orders them: Date.parse stops at the
// millisecond, and reports filed in one millisecond would then fall back to id order
// where intake's pages keep their microseconds. (A string compare is no better: the
// fraction is left out when it is zero.) Within 2^53, exact until the year 2255.
export function instant(iso) {
  const fraction = /\.(\d+)/.exec(iso);
  const micros = fraction ? Number(fraction[1].padEnd(6, "0").slice(3, 6)) : 0;
  return Date.parse(iso) * 1000 + micros;
}

export function sortRows(rows) {
  return rows.sort((a, b) => (newer(a, b) ? -1 : newer(b, a) ? 1 : 0));
}

// A fresh first page with the pages opened by "more" kept: what the first page covers
// now is replaced, what lies beyond its last row stays (older pages are not asked again).
export function withFirstPage(rows, page, keepOlder) {
  const last = page.at(-1);
  if (!keepOlder || !last) return page;
  const fresh = new Set(page.map((r) => r.report_id));
  return [...page, ...rows.filter((r) => !fresh.has(r.report_id) && newer(last, r))];
}

// The late dispatches among the rows: dispatch_id -> agency.
export function lateDispatches(rows, now) {
  const late = new Map();
  for (const row of rows) for (const a of row.agencies) if (isLate(a, now)) late.set(a.dispatch_id, a.agency);
  return late;
}

// The centre's late count now: the notifier's count at the last load (every dispatch,
// whatever page or filter), moved by what the rows on screen did since (an agency past
// its deadline, an acknowledgement, an incident closed). `seen`: lateDispatches() at
// that load. Null when the notifier did not answer.
export function lateTotals(base, seen, rows, now) {
  if (!base || base.late === null || base.late === undefined) return null;
  const moved = {};
  for (const agency of seen.values()) moved[agency] = (moved[agency] || 0) - 1;
  for (const agency of lateDispatches(rows, now).values()) moved[agency] = (moved[agency] || 0) + 1;
  const byAgency = {};
  for (const agency of new Set([...Object.keys(base.by_agency || {}), ...Object.keys(moved)])) {
    const n = Math.max(0, (base.by_agency?.[agency] || 0) + (moved[agency] || 0));
    if (n) byAgency[agency] = n;
  }
  return { late: Object.values(byAgency).reduce((sum, n) => sum + n, 0), byAgency };
}
