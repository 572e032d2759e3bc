"""The development stack: an embedded PostgreSQL, the Tansu broker and the four
services as processes. `make run` uses it, and so do the end-to-end tests, so what
the tests start is what a newcomer runs."""
