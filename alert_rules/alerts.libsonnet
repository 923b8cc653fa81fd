// Alerting rules: every alert condition of the spec (see docs/alerting.md for the catalogue and
// the reasoning behind each threshold). Every number comes from config/config.libsonnet.
local recording = import 'recording.libsonnet';
local u = import 'util.libsonnet';

function(config) {
  local d(x) = u.duration(config, x),
  local sec(x) = u.seconds(config, x),
  local num(x) = if x == 0 then '0' else '%.12g' % x,
  local pct(x) = num(x * 100) + '%',
  local audit = config.auditExporterSelector,
  local integ = config.integrityExporterSelector,
  local app = config.appSelector,
  local uid = config.dashboardUids,

  // One alert rule with the labels and annotations every alert must carry (team brief).
  // category/source null: taken from the series (escalation alerts inherit the original's).
  local alert(name, severity, category, source, expr, forSeconds, summary, description, dashboard, labels={}) = {
    alert: name,
    expr: expr,
    [if u.toSeconds(forSeconds) > 0 then 'for']: d(forSeconds),
    labels: { severity: severity, service: config.serviceName }
            + (if category != null then { category: category } else {})
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

  local errorRateHigh(severity) = alert(
    'DeletionErrorRateHigh',
    severity,
    'availability',
    'audit',
    |||
      deletion:deletion_error_ratio:rate%(w)s > %(t)s
      and on () %(g)s
    ||| % { w: errWindow, t: num(config.errorRate[severity]), g: guard(errWindow) },
    config.errorRate['for'][severity],
    'Deletion error rate is elevated.',
    'The DELETE /api/users/{id} error ratio over ' + errWindow + ' is {{ $value | humanizePercentage }}'
    + ' (' + severity + ' above ' + pct(config.errorRate[severity]) + ').',
    uid.postDeploy,
  ),

  local postDeploy(severity, threshold, forSeconds) = alert(
    'DeletionErrorRatePostDeploy',
    severity,
    'availability',
    'audit',
    |||
      deletion:deletion_error_ratio:rate%(w)s > %(t)s
      and on () %(g)s
      and on () deletion:post_deploy:active
    ||| % { w: errWindow, t: num(threshold), g: guard(errWindow) },
    forSeconds,
    'Deletion error rate is elevated after a deploy.',
    'Within ' + d(config.postDeploy.window) + ' of a deploy the DELETE /api/users/{id} error ratio over '
    + errWindow + ' is {{ $value | humanizePercentage }} (' + severity + ' above ' + pct(threshold) + ').',
    uid.postDeploy,
  ),

  local failuresPerHour(name, errorType, cfg, category, summary) = alert(
    name,
    'warning',
    category,
    'audit',
    'round(sum(increase(deletion_failures_total{%s,error_type="%s"}[%s]))) > %s'
    % [audit, errorType, d(cfg.window), num(cfg.warning)],
    cfg['for'],
    summary,
    '{{ $value }} deletions failed with error_type ' + errorType + ' in the last ' + cfg.window
    + ' (more than ' + num(cfg.warning) + ').',
    uid.postDeploy,
  ),

  local latencyP95(severity) = alert(
    'DeletionLatencyP95High',
    severity,
    'latency',
    'audit',
    |||
      deletion:deletion_duration_seconds:p95_rate%(w)s > %(t)s
      and on () %(g)s
    ||| % { w: latWindow, t: num(config.latency[severity]), g: guard(latWindow, config.latency.minRequestsPerWindow) },
    config.latency['for'][severity],
    'Deletion p95 latency is high.',
    'The p95 duration of DELETE /api/users/{id} over ' + latWindow + ' is {{ $value | humanizeDuration }}'
    + ' (' + severity + ' above ' + num(config.latency[severity]) + 's).',
    uid.postDeploy,
  ),

  local memoryHigh(severity) = alert(
    'DeletionAppMemoryHigh',
    severity,
    'resources',
    'app',
    'deletion:deletion_app_memory:ratio > %s' % num(config.memory[severity]),
    config.memory['for'],
    'Deletion API memory usage is high.',
    'Instance {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its memory limit ('
    + severity + ' above ' + pct(config.memory[severity]) + ').',
    uid.postDeploy,
  ),

  local integrityViolations(severity) = alert(
    'DeletionIntegrityViolations',
    severity,
    'integrity',
    'integrity',
    'deletion:deletion_integrity_violations:sum > %s' % num(config.integrity[severity]),
    config.integrity['for'],
    'Data integrity violations after deletions.',
    'The integrity checks report {{ $value }} violations in total (' + severity + ' above '
    + num(config.integrity[severity]) + ').',
    uid.integrity,
  ),

  local burnRate(br) =
    assert std.member(recording(config).windows, br.long) && std.member(recording(config).windows, br.short)
           : 'slo.burnRates windows must be recorded windows';
    local threshold = br.factor * (1 - config.slo.target);
    alert(
      'DeletionErrorBudgetBurn',
      br.severity,
      'slo',
      'audit',
      |||
        deletion:deletion_error_ratio:rate%(long)s > %(t)s
        and on () deletion:deletion_error_ratio:rate%(short)s > %(t)s
        and on () %(g)s
      ||| % { long: br.long, short: br.short, t: num(threshold), g: guard(br.long) },
      br['for'],
      'Deletion error budget is burning too fast.',
      'The error ratio is {{ $value | humanizePercentage }} over ' + br.long + ' and above '
      + pct(threshold) + ' over ' + br.short + ' too: ' + num(br.factor) + 'x the rate that spends the '
      + config.slo.period + ' budget of the ' + pct(config.slo.target) + ' success target.',
      uid.executive,
      { long_window: br.long, short_window: br.short },
    ),

  local escalation(name, level, who, afterSeconds) = alert(
    name,
    'critical',
    null,
    null,
    |||
      label_replace(
        max without (alertstate) (
          ALERTS{alertstate="firing", severity="%(sev)s", service="%(svc)s", alertname!~"DeletionEscalation.*"}
        ),
        "escalated_alert", "$1", "alertname", "(.+)"
      )
    ||| % { sev: config.escalationSeverity, svc: config.serviceName },
    afterSeconds,
    'A critical deletion alert is unresolved; escalating.',
    '{{ $labels.escalated_alert }} has been firing for more than ' + d(afterSeconds)
    + ' without being resolved: escalated to the ' + who + '.',
    uid.postDeploy,
    { escalation: level },
  ),

  local zscoreAlert(name, series, direction, what) = alert(
    name,
    'info',
    'anomaly',
    'audit',
    // both directions without abs(), so that $value keeps its sign (a drop reads negative)
    (if direction == 'both' then '%(x)s > %(z)s or %(x)s < -%(z)s' else '%(x)s > %(z)s')
    % { x: series, z: num(config.anomaly.zScore) },
    config.anomaly['for'],
    'Deletion ' + what + ' is outside its usual band.',
    'The deletion ' + what + ' is {{ $value | printf "%.1f" }} standard deviations away from its '
    + config.anomaly.window + ' mean (threshold ' + num(config.anomaly.zScore) + ').',
    uid.usage,
  ),

  // Sections of the one alerting group, in evaluation order (escalation last: it reads the
  // ALERTS series the sections above wrote in this same evaluation).
  local sections = [
    {
      name: 'deletion-alerts-availability',
      rules: [errorRateHigh(s) for s in ['info', 'warning', 'critical']] + [
        postDeploy('warning', config.postDeploy.errorRateWarning, config.postDeploy.errorRateWarningFor),
        postDeploy('critical', config.postDeploy.errorRateCritical, config.postDeploy.errorRateCriticalFor),
        failuresPerHour('DeletionTimeoutsHigh',
                        'timeout',
                        config.timeoutsPerHour,
                        'latency',
                        'Deletions are timing out.'),
        failuresPerHour('DeletionAuthorizationFailuresHigh',
                        'authorization',
                        config.authorizationFailuresPerHour,
                        'security',
                        'Many deletions were refused for authorization.'),
      ],
    },
    {
      name: 'deletion-alerts-latency',
      rules: [latencyP95(s) for s in ['info', 'warning', 'critical']] + [
        alert(
          'DeletionLatencyAverageHigh',
          'warning',
          'latency',
          'audit',
          |||
            deletion:deletion_duration_seconds:avg_rate%(w)s > %(t)s
            and on () %(g)s
          ||| % { w: latWindow, t: num(config.latency.averageTarget), g: guard(latWindow, config.latency.minRequestsPerWindow) },
          config.latency.averageFor,
          'Deletion average latency is above target.',
          'The average duration of DELETE /api/users/{id} over ' + latWindow
          + ' is {{ $value | humanizeDuration }} (target below ' + num(config.latency.averageTarget) + 's).',
          uid.postDeploy,
        ),
      ],
    },
    {
      name: 'deletion-alerts-resources',
      rules: [memoryHigh(s) for s in ['warning', 'critical']] + [
        alert(
          'DeletionAppMemoryAboveBaseline',
          'info',
          'resources',
          'app',
          |||
            sum by (instance) (%(mem)s{%(s)s})
            / instance:deletion_app_memory_bytes:baseline
            > %(t)s
          ||| % { mem: config.appMemoryMetric, s: app, t: num(1 + config.memory.baselineIncrease) },
          config.memory.baselineFor,
          'Deletion API memory is well above its baseline.',
          'Instance {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its '
          + config.memory.baselineWindow + ' median memory (investigate above '
          + pct(1 + config.memory.baselineIncrease) + ').',
          uid.postDeploy,
        ),
        alert(
          'DeletionAppMemoryFillingUp',
          'info',
          'resources',
          'app',
          |||
            max by (instance) (predict_linear(%(mem)s{%(s)s}[%(w)s], %(h)s))
            > max by (instance) (%(limit)s{%(s)s})
          ||| % {
            mem: config.appMemoryMetric,
            limit: config.appMemoryLimitMetric,
            s: app,
            w: d(config.memory.predictWindow),
            h: num(sec(config.memory.predictHorizon)),
          },
          config.memory.predictFor,
          'Deletion API memory will reach its limit soon.',
          'At the trend of the last ' + config.memory.predictWindow + ', instance {{ $labels.instance }}'
          + ' will use {{ $value | humanize1024 }}B within ' + d(config.memory.predictHorizon)
          + ', more than its memory limit.',
          uid.postDeploy,
        ),
        alert(
          'DeletionDbPoolSaturated',
          'warning',
          'resources',
          'app',
          'deletion:deletion_app_pool_usage:ratio > %s' % num(config.pool.warning),
          config.pool['for'],
          'Deletion API database pool is nearly exhausted.',
          'Instance {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its database'
          + ' connection pool (warning above ' + pct(config.pool.warning) + ').',
          uid.postDeploy,
        ),
      ],
    },
    {
      name: 'deletion-alerts-integrity',
      rules: [
        alert(
          'DeletionOrphanedRecords',
          'warning',
          'integrity',
          'integrity',
          'sum by (check) (deletion_integrity_violations{%s,category=~"%s"}) > %s'
          % [integ, std.join('|', config.integrity.orphanCategories), num(config.integrity.orphanTolerance)],
          config.integrity['for'],
          'Deleted users left orphaned records behind.',
          'Integrity check {{ $labels.check }} finds {{ $value }} orphaned records (tolerance '
          + num(config.integrity.orphanTolerance) + ').',
          uid.integrity,
        ),
      ] + [integrityViolations(s) for s in ['warning', 'critical']] + [
        alert(
          'DeletionForbiddenDeletion',
          'critical',
          'security',
          'audit',
          'sum by (kind) (increase(deletion_forbidden_successes_total{%s}[%s])) > 0'
          % [audit, d(config.integrity.forbiddenWindow)],
          0,
          'A deletion the business rules forbid succeeded.',
          '{{ $value | printf "%.0f" }} forbidden deletions of kind {{ $labels.kind }} succeeded in the last '
          + config.integrity.forbiddenWindow + ' (self-deletion or SUPER_ADMIN target).',
          uid.integrity,
        ),
        alert(
          'DeletionCompletenessAuditFailed',
          'critical',
          'integrity',
          'integrity',
          'sum(increase(deletion_completeness_failures_total{%s}[%s])) > 0'
          % [integ, d(config.integrity.completenessWindow)],
          0,
          'A deleted user was not completely removed.',
          'The completeness audit found {{ $value | printf "%.0f" }} incompletely deleted users in the last '
          + config.integrity.completenessWindow + '.',
          uid.integrity,
        ),
      ],
    },
    {
      name: 'deletion-alerts-slo',
      rules: [burnRate(br) for br in config.slo.burnRates],
    },
    {
      name: 'deletion-alerts-anomaly',
      rules: [
        zscoreAlert('DeletionRateAnomaly', 'deletion:deletion_requests:rate1h_zscore1w', 'both', 'request rate'),
        zscoreAlert('DeletionLatencyAnomaly', 'deletion:deletion_duration_seconds:avg_rate1h_zscore1w', 'up', 'average latency'),
      ],
    },
    {
      name: 'deletion-alerts-meta',
      rules: [
        alert(
          'Watchdog',
          'info',
          'meta',
          'prometheus',
          'vector(1)',
          0,
          'Alerting pipeline heartbeat.',
          'Always firing (value {{ $value }}): the heartbeat receiver pages when it stops arriving,'
          + ' i.e. when Prometheus or Alertmanager is down.',
          uid.executive,
        ),
        alert(
          'DeletionAuditExporterDown',
          'critical',
          'meta',
          'audit',
          'up{%s} == 0 or absent(up{%s})' % [audit, audit],
          config.exporterDownFor,
          'Deletion audit exporter is down.',
          '{{ if $labels.instance }}Prometheus cannot scrape {{ $labels.instance }} (up = {{ $value }})'
          + '{{ else }}No target of job {{ $labels.job }} is scraped{{ end }}: deletion alerts are blind.',
          uid.postDeploy,
        ),
        alert(
          'DeletionIntegrityExporterDown',
          'critical',
          'meta',
          'integrity',
          'up{%s} == 0 or absent(up{%s})' % [integ, integ],
          config.exporterDownFor,
          'Deletion integrity exporter is down.',
          '{{ if $labels.instance }}Prometheus cannot scrape {{ $labels.instance }} (up = {{ $value }})'
          + '{{ else }}No target of job {{ $labels.job }} is scraped{{ end }}: integrity alerts are blind.',
          uid.integrity,
        ),
        alert(
          'DeletionAuditDatabaseDown',
          'critical',
          'meta',
          'audit',
          'deletion_audit_up{%s} == 0' % audit,
          config.databaseDownFor,
          'Audit exporter cannot read the audit log.',
          'deletion_audit_up on {{ $labels.instance }} is {{ $value }}: the last polls of the'
          + ' deletion_audit table failed.',
          uid.postDeploy,
        ),
        alert(
          'DeletionIntegrityDatabaseDown',
          'critical',
          'meta',
          'integrity',
          'deletion_integrity_up{%s} == 0' % integ,
          config.databaseDownFor,
          'Integrity exporter cannot reach the database.',
          'deletion_integrity_up on {{ $labels.instance }} is {{ $value }}: integrity checks cannot run.',
          uid.integrity,
        ),
        alert(
          'DeletionAuditDataStale',
          'warning',
          'meta',
          'audit',
          'time() - deletion_audit_last_poll_success_timestamp_seconds{%s} > %s'
          % [audit, num(sec(config.auditMaxPollAge))],
          0,
          'Deletion audit data is stale.',
          'The audit exporter on {{ $labels.instance }} last polled the audit log successfully'
          + ' {{ $value | humanizeDuration }} ago (limit ' + d(config.auditMaxPollAge) + ').',
          uid.postDeploy,
        ),
        alert(
          'DeletionIntegrityChecksStale',
          'warning',
          'meta',
          'integrity',
          'time() - deletion_integrity_check_last_success_timestamp_seconds{%s} > %s'
          % [integ, num(sec(config.integrity.maxResultAge))],
          0,
          'Integrity check results are stale.',
          'Integrity check {{ $labels.check }} last succeeded {{ $value | humanizeDuration }} ago:'
          + ' integrity issues are no longer detected within ' + d(config.integrity.maxResultAge) + '.',
          uid.integrity,
        ),
        alert(
          'DeletionIntegrityCheckFailing',
          'warning',
          'meta',
          'integrity',
          'deletion_integrity_check_up{%s} == 0' % integ,
          config.integrity.checkFailingFor,
          'An integrity check keeps failing.',
          'Integrity check {{ $labels.check }} has failed on every run for ' + d(config.integrity.checkFailingFor)
          + ' (deletion_integrity_check_up = {{ $value }}).',
          uid.integrity,
        ),
        alert(
          'DeletionAuditInvalidRows',
          'warning',
          'meta',
          'audit',
          'sum by (reason) (increase(deletion_audit_invalid_rows_total{%s}[%s])) > 0'
          % [audit, d(config.invalidRowsWindow)],
          0,
          'The audit log contains rows the exporter cannot read.',
          '{{ $value | printf "%.0f" }} audit rows were rejected as invalid ({{ $labels.reason }}) in the last '
          + config.invalidRowsWindow + '.',
          uid.postDeploy,
        ),
        alert(
          'DeletionAuditCursorHeldBack',
          'warning',
          'meta',
          'audit',
          'deletion_audit_cursor_lag_seconds{%s} > %s' % [audit, num(sec(config.auditMaxCursorLag))],
          config.auditCursorLagFor,
          'Audit rows are held back by an open transaction.',
          'The audit exporter on {{ $labels.instance }} has been waiting {{ $value | humanizeDuration }}'
          + ' for an open transaction: deletion metrics lag behind the database.',
          uid.postDeploy,
        ),
        alert(
          'PrometheusRuleEvaluationFailures',
          'critical',
          'meta',
          'prometheus',
          'sum by (rule_group) (increase(prometheus_rule_evaluation_failures_total{%s}[%s])) > 0'
          % [config.prometheusSelector, d(config.ruleFailuresWindow)],
          0,
          'Prometheus fails to evaluate rules.',
          '{{ $value | printf "%.0f" }} evaluations of rule group {{ $labels.rule_group }} failed in the last '
          + config.ruleFailuresWindow + ': alerts in it may not fire.',
          uid.executive,
        ),
        alert(
          'AlertmanagerNotificationsFailing',
          'critical',
          'meta',
          'alertmanager',
          'sum by (integration) (increase(alertmanager_notifications_failed_total{%s}[%s])) > 0'
          % [config.alertmanagerSelector, d(config.notificationsFailedWindow)],
          config.notificationsFailingFor,
          'Alertmanager fails to send notifications.',
          '{{ $value | printf "%.0f" }} notifications to {{ $labels.integration }} failed in the last '
          + config.notificationsFailedWindow + '.',
          uid.executive,
        ),
        alert(
          'DeletionEndpointAuthProbeFailed',
          'critical',
          'security',
          'probe',
          'probe_success{%s} == 0' % config.authProbeSelector,
          config.authProbeFor,
          'The deletion endpoint did not refuse a bogus token.',
          'The probe of {{ $labels.instance }} with an invalid token did not get 401/403'
          + ' (probe_success = {{ $value }}): the endpoint may delete users without authorization.',
          uid.postDeploy,
        ),
      ],
    },
    {
      // Reads the ALERTS series the sections above wrote in this same evaluation.
      name: 'deletion-alerts-escalation',
      rules: [
        escalation('DeletionEscalationSenior', 'senior', 'senior engineer', config.escalation.senior),
        escalation('DeletionEscalationManager', 'manager', 'manager', config.escalation.manager),
      ],
    },
  ],

  // One group: its rules run in sequence, so each alert sees the records (and each escalation
  // the ALERTS) of the same evaluation. Separate groups run in no defined order, which would
  // make every `for` boundary one interval uncertain.
  groups: [
    {
      name: 'deletion-alerts',
      interval: d(config.evaluationInterval),
      rules: recording(config).alerting + std.flattenArrays([s.rules for s in sections]),
    },
  ],
}
