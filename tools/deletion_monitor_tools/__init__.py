"""Build-time tools, not shipped in the product's wheel: render the rules, the Alertmanager
configuration and the dashboards from their sources (`python -m deletion_monitor_tools.generate`),
and the linters `make lint` runs."""
