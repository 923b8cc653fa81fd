"""The audit exporter: the deletion audit log turned into exact, restart-stable metrics
(`deletion-monitor audit-exporter`)."""
