"""Data-integrity monitoring: checks as data, a background scheduler, a Prometheus collector,
the `integrity-exporter` and `check-integrity` subcommands."""
