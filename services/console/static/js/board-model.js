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

export function sortRows(rows, now) {
  const late = (row) => row.agencies.some((a) => isLate(a, now));
  return rows.sort((a, b) => (late(b) - late(a)) || (Date.parse(a.received_at) - Date.parse(b.received_at)));
}
