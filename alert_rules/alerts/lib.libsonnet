// Helpers every alert file shares: the alert() constructor with the labels and annotations every
// alert must carry, number formatting, selectors and the rare-endpoint guard. Every number comes
// from src/deletion_monitor/data/config.libsonnet.
local recording = import '../recording.libsonnet';
local u = import '../util.libsonnet';

function(config) {
  local d(x) = u.duration(config, x),
  local sec(x) = u.seconds(config, x),
  local num(x) = if x == 0 then '0' else '%.12g' % x,
  local pct(x) = num(x * 100) + '%',
  local audit = config.auditExporterSelector,
  local integ = config.integrityExporterSelector,
  local app = config.appSelector,
  local uid = config.dashboardUids,

  // The incident an alert of `category` belongs to (config.incidents; docs/alerting.md
  // "Incidents and grouping"): what Alertmanager groups pages by and the escalation clock runs on.
  local incidentOf(category) =
    assert std.objectHas(config.incidents, category) : 'config.incidents has no entry for category ' + category;
    config.incidents[category],

  // One alert rule with the labels and annotations every alert must carry (team brief).
  // category/source null: taken from the series (the escalation alerts carry the incident of
  // the series they count). `incident` follows from the category; `labels` may override it.
  local alert(name, severity, category, source, expr, forSeconds, summary, description, dashboard, labels={}) = {
    alert: name,
    expr: expr,
    [if u.toSeconds(forSeconds) > 0 then 'for']: d(forSeconds),
    labels: { severity: severity, service: config.serviceName }
            + (if category != null then { category: category, incident: incidentOf(category) } else {})
            + (if source != null then { source: source } else {})
            + labels,
    annotations: {
      summary: summary,
      description: description,
      runbook_url: config.runbookBaseUrl + name + '.md',
      dashboard_url: config.grafanaBaseUrl + '/d/' + dashboard,
    },
  },

  // Rare-endpoint guard: enough deletions in `window` for a ratio over it to mean anything.
  local guard(window, minRequests=config.minRequestsPerWindow) =
    'deletion:deletion_requests:rate%s >= %s' % [window, num(u.minRate(config, window, minRequests))],

  // The alerts read recorded rates, which exist for the recorded windows only.
  local errWindow =
    assert std.member(recording(config).windows, config.errorRateWindow) : 'errorRateWindow must be a recorded window';
    config.errorRateWindow,
  local latWindow =
    assert std.member(['5m', '1h'], config.latency.window) : 'latency.window must be 5m or 1h';
    config.latency.window,

  d:: d,
  sec:: sec,
  num:: num,
  pct:: pct,
  audit:: audit,
  integ:: integ,
  app:: app,
  uid:: uid,
  alert:: alert,
  incidentOf:: incidentOf,
  guard:: guard,
  errWindow:: errWindow,
  latWindow:: latWindow,
}
