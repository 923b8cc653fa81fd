// deletion-monitoring as a monitoring mixin, in the kubernetes-mixin conventions: hidden fields
// _config (the defaults), prometheusRules (recording rules), prometheusAlerts (alerting rules)
// and grafanaDashboards ({file name: dashboard}). Vendor it with jsonnet-bundler and override
// _config; docs/mixin.md shows how.
//
//   (import 'deletion-monitoring/mixin.libsonnet') + {
//     _config+:: { auditExporterSelector: 'job="deletion-audit"', errorRate+: { warning: 0.02 } },
//   }
//
// The rules are built from the same sources as the committed alert_rules/*.rules.yml (rendered by
// alert_rules/rules.jsonnet), with $._config, so an override reaches every expression, `for` and
// label it feeds. Without an override the groups equal the committed files exactly.
local alerts = import 'alert_rules/alerts.libsonnet';
local recording = import 'alert_rules/recording.libsonnet';

(import 'src/deletion_monitor/data/config.libsonnet') + {
  // The records only dashboards, reports and the watch console read (deletion-records-* groups).
  prometheusRules+:: {
    groups+: recording($._config).groups,
  },

  // The one alerting group. It starts with the records the alerts read, before its first alert:
  // rules of one group are evaluated in order, so every alert (and every escalation, last in
  // the group) sees the values of the same evaluation. Moving those records to prometheusRules
  // would put them in another group, evaluated at its own offset, and make every `for` boundary
  // one interval uncertain (docs/alerting.md "Structure: one alerting group").
  prometheusAlerts+:: {
    groups+: alerts($._config).groups,
  },

  // The dashboards are grafanalib Python (dashboards/*.dashboard.py), rendered at build time
  // from the SHIPPED config into dashboards/generated/. jsonnet cannot run that Python, so these
  // are the committed JSON as it is: a _config override does not reach them (their threshold
  // colours, selectors and links follow the shipped config). See docs/mixin.md.
  grafanaDashboards+:: {
    'deletion-executive.json': import 'dashboards/generated/deletion-executive.json',
    'deletion-integrity.json': import 'dashboards/generated/deletion-integrity.json',
    'deletion-post-deploy.json': import 'dashboards/generated/deletion-post-deploy.json',
    'deletion-usage.json': import 'dashboards/generated/deletion-usage.json',
  },
}
