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
local shipped = (import 'src/deletion_monitor/data/config.libsonnet')._config;

// The generated dashboards carry the shipped selectors as literal text in their queries
// (job="deletion-audit-exporter" ...). retarget(cfg) swaps each for cfg's in every string of a
// dashboard (object keys, the file names, are left alone), through a placeholder per field, so an
// override that contains another shipped selector is not rewritten a second time. Without an
// override it is the identity.
local selectorFields = [f for f in std.objectFields(shipped) if std.endsWith(f, 'Selector')];
local retarget(cfg) =
  local changed = [f for f in selectorFields if cfg[f] != shipped[f]];
  local token(f) = '@@deletion-monitoring:' + f + '@@';
  local swap(s) = std.foldl(
    function(acc, f) std.strReplace(acc, token(f), cfg[f]),
    changed,
    std.foldl(function(acc, f) std.strReplace(acc, shipped[f], token(f)), changed, s)
  );
  local walk(v) =
    if std.isString(v) then swap(v)
    else if std.isArray(v) then std.map(walk, v)
    else if std.isObject(v) then std.mapWithKey(function(_, x) walk(x), v)
    else v;
  if changed == [] then function(d) d else walk;

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
  // are the committed JSON with one change: the selectors (every _config field named *Selector)
  // follow _config, so a relabelled job still fills the panels. Threshold colours and links
  // stay those of the shipped config (docs/mixin.md).
  grafanaDashboards+:: retarget($._config)({
    'deletion-executive.json': import 'dashboards/generated/deletion-executive.json',
    'deletion-integrity.json': import 'dashboards/generated/deletion-integrity.json',
    'deletion-post-deploy.json': import 'dashboards/generated/deletion-post-deploy.json',
    'deletion-usage.json': import 'dashboards/generated/deletion-usage.json',
  }),
}
