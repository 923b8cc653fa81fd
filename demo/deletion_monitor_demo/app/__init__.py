"""The demo application: a real `DELETE /api/users/{id}` on the reference schema.

It is what `make demo` and the end-to-end tests monitor: bearer-token authorization, the cascade
plus the manual clean-up in one transaction under a statement timeout, one audit row per call in
the audit-log contract's format, and `/metrics` with process, GC and connection-pool gauges.
Faults (error spike, latency, timeouts, memory leak, skipped clean-up) are switched on and off at
run time through `/admin/faults`, so a scenario can start and stop an incident.

Modules: `auth` (tokens and who may delete whom), `faults` (the switches), `service` (the
deletion itself), `server` (HTTP, metrics and the `deletion-monitor-demo app` subcommand).
"""
