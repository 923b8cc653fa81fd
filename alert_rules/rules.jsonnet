// Entry point: Prometheus rule files for deletion-monitoring, rendered by
// tools/deletion_monitor_tools/render_rules.py into alert_rules/*.rules.yml.
function(config=(import '../src/deletion_monitor/data/config.libsonnet')._config) {
  'deletion-recording.rules.yml': (import 'recording.libsonnet')(config),
  'deletion-alerts.rules.yml': (import 'alerts.libsonnet')(config),
}
