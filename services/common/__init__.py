"""Plumbing shared by the services: settings, PostgreSQL, Kafka, the outbox relay,
the consumer loop, health, metrics, errors, logging. No domain rules live here."""
