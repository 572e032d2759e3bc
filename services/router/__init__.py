"""Router: consumes `report.received`, decides the agencies from the routing table (data
in PostgreSQL, versioned), and publishes one `dispatch.requested` per agency on
`e112.dispatch.<agency>`."""
