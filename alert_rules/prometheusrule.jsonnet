// Entry point: the PrometheusRule object of the shipped config, rendered by
// tools/deletion_monitor_tools/render_prometheusrule.py into
// alert_rules/deletion-monitoring.prometheusrule.yaml. It goes through the mixin (with the loaded
// config as its _config), so the committed object is what a mixin user gets without overrides.
function(config)
  local mixin = (import '../mixin.libsonnet') + { _config:: config };
  (import '../lib/prometheusrule.libsonnet')(mixin)
