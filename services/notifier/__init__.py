"""Notifier: consumes every `e112.dispatch.<agency>` topic, delivers each dispatch to
the agency's webhook with bounded retries, records every attempt, and publishes
`dispatch.delivered` / `dispatch.failed` on `e112.dispatch-status`."""
