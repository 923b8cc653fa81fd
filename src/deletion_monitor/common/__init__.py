"""What every part of the product shares: config loading, durations, CLI flag types, logging,
secret redaction, PostgreSQL error classes, the metrics HTTP server and the Prometheus API client.
Imports nothing else of the package."""
