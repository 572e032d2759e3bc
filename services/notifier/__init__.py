"""Notifier: consumes every `e112.dispatch.<agency>` topic and delivers each dispatch
through the agency's channels in order (a signed webhook, then e-mail), with bounded
retries and a per-agency circuit breaker, recording every attempt. Agencies
acknowledge (API key or signed e-mail link) and report field status; dispatches not
acknowledged in time are re-sent, then escalated. Publishes `dispatch.delivered`,
`dispatch.failed`, `dispatch.acknowledged`, `dispatch.field_status` and
`dispatch.escalated` on `e112.dispatch-status` through the outbox.

Modules: app (wiring), api (admin API), agency_api (the agencies' API and e-mail
links), handler (queueing), deliverer and channels (delivery), escalator and
escalation (timers), acks (acknowledgement, field status), store (SQL); pure rules in
policy, breaker, escalation, field_status, signing and mail; webhook_verify is the
reference verifier agencies copy."""
