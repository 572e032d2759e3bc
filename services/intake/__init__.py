"""Intake: the REST front door. Validates a contact, stores it with its
`report.received` event in one transaction (outbox), and shows each report's status
and timeline as the other services report progress on Kafka."""
