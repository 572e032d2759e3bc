"""Chaos testing of the whole pipeline (issue 7): SIGKILLs, broker and PostgreSQL
restarts and a failing agency endpoint under steady load, every 202 and every delivery
in a ledger checked after each scenario. `make chaos`, or `python -m chaos --short`."""
