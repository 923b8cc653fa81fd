"""What an SRE or a manager reads from Prometheus: `deletion-monitor watch` (the terminal view)
and `deletion-monitor report` (usage, trends, compliance; figures, recommendations, rendering)."""
