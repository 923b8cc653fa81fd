// The monitoring itself: exporters, their databases, the audit exporter's initial load,
// staleness, Prometheus and Alertmanager.
//
// Replicas: several targets of one exporter job (config.replicaLabels tell them apart) serve the
// same figures. An exporter or its database is critical only when NO replica of the job works
// (the data has stopped); one replica failing while another serves is the warning
// Deletion*ExporterReplicaDown. With a single replica the critical alerts behave as before.
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local dedup(expr) = u.dedup(config, expr),
  // `bad` on a replica, unless a replica of the same job is healthy (`good`).
  local noReplicaWorks(bad, good) = '%s unless on (job) %s' % [bad, good],
  local replicaDown(name, source, sel, dbUp, what, dashboard) = alert(
    name,
    'warning',
    'meta',
    source,
    |||
      (up{%(s)s} == 0 or %(db)s{%(s)s} == 0)
      and on (job)
      %(db)s{%(s)s} == 1
    ||| % { s: sel, db: dbUp },
    config.exporterDownFor,
    'A replica of the ' + what + ' exporter is down.',
    '{{ $labels.instance }} is not scraped or cannot read its database ({{ $value }}); another replica'
    + ' of job {{ $labels.job }} still serves the ' + what + ' figures.',
    dashboard,
  ),
  local d = l.d,
  local sec = l.sec,
  local num = l.num,
  local audit = l.audit,
  local integ = l.integ,
  local uid = l.uid,
  local alert = l.alert,

  group: {
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
        '%s or absent(up{%s})' % [noReplicaWorks('up{%s} == 0' % audit, 'up{%s} == 1' % audit), audit],
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
        '%s or absent(up{%s})' % [noReplicaWorks('up{%s} == 0' % integ, 'up{%s} == 1' % integ), integ],
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
        noReplicaWorks('deletion_audit_up{%s} == 0' % audit, 'deletion_audit_up{%s} == 1' % audit),
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
        noReplicaWorks('deletion_integrity_up{%s} == 0' % integ, 'deletion_integrity_up{%s} == 1' % integ),
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
        // Not while the initial load progresses: no poll succeeds before it ends, and
        // DeletionAuditLoadSlow watches its duration. A load that stops moving is stale.
        |||
          time() - deletion_audit_last_poll_success_timestamp_seconds{%(s)s} > %(t)s
          unless
          (deletion_audit_ready{%(s)s} == 0 and delta(deletion_audit_initial_load_rows_done{%(s)s}[%(w)s]) > 0)
        ||| % { s: audit, t: num(sec(config.auditMaxPollAge)), w: d(config.auditLoadProgressWindow) },
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
        'sum by (reason) (%s) > 0'
        % dedup('increase(deletion_audit_invalid_rows_total{%s}[%s])' % [audit, d(config.invalidRowsWindow)]),
        0,
        'The audit log contains rows the exporter cannot read.',
        '{{ $value | printf "%.0f" }} audit rows were rejected as invalid ({{ $labels.reason }}) in the last '
        + config.invalidRowsWindow + '.',
        uid.postDeploy,
      ),
      alert(
        'DeletionAuditLoadSlow',
        'warning',
        'meta',
        'audit',
        'deletion_audit_ready{%(s)s} == 0 and deletion_audit_up{%(s)s} == 1' % { s: audit },
        config.auditLoadMaxDuration,
        'The audit exporter initial load takes too long.',
        'The audit exporter on {{ $labels.instance }} has been loading the audit log for more than '
        + d(config.auditLoadMaxDuration) + ' (database up, counters not served yet)'
        + '{{ with printf `deletion_audit_initial_load_rows_done{instance="%s"}` $labels.instance | query }}:'
        + ' {{ . | first | value | humanize }} rows done{{ end }}'
        + '{{ with printf `deletion_audit_initial_load_rows_estimated{instance="%s"}` $labels.instance | query }}'
        + ' of about {{ . | first | value | humanize }}{{ end }}. Deletion alerts cannot fire until it ends.',
        uid.postDeploy,
      ),
      alert(
        'DeletionAuditForeignTransactionIds',
        'warning',
        'meta',
        'audit',
        // One figure per table, however many exporter replicas read it.
        '%s > 0' % dedup('deletion_audit_foreign_tx_rows{%s}' % audit),
        config.foreignTxFor,
        'Audit rows carry transaction ids from another cluster.',
        '{{ $value }} rows of deletion_audit have a tx ahead of the current transaction id of the'
        + ' database: they were copied from another cluster and the exporter will never ingest them.',
        uid.postDeploy,
      ),
      alert(
        'DeletionAuditCheckpointStale',
        'warning',
        'meta',
        'audit',
        // Either the last checkpoint is too old, or writes fail and none succeeded in the window
        // (an exporter whose store failed from its start has no last-write time at all).
        |||
          time() - deletion_audit_checkpoint_last_write_timestamp_seconds{%(s)s} > %(t)s
          or
          (increase(deletion_audit_checkpoint_write_errors_total{%(s)s}[%(w)s]) > 0
           unless on (job, instance) increase(deletion_audit_checkpoint_writes_total{%(s)s}[%(w)s]) > 0)
        ||| % { s: audit, t: num(sec(config.auditCheckpointMaxAge)), w: d(config.auditCheckpointMaxAge) },
        0,
        'The audit exporter has stopped writing checkpoints.',
        'The audit exporter on {{ $labels.instance }} has written no checkpoint for more than '
        + d(config.auditCheckpointMaxAge) + ' ({{ $value | printf "%.0f" }}: seconds since the last one,'
        + ' or failed writes): its next restart re-aggregates the whole audit table.',
        uid.postDeploy,
      ),
      alert(
        'DeletionIntegrityCheckNoLongerApplicable',
        'warning',
        'meta',
        'integrity',
        |||
          deletion_integrity_check_applicable{%(s)s} == 0
          and on (job, instance, check)
          max_over_time(deletion_integrity_check_applicable{%(s)s}[%(w)s]) == 1
        ||| % { s: integ, w: config.integrity.notApplicableWindow },
        config.integrity.checkFailingFor,
        'An integrity check no longer applies.',
        'Integrity check {{ $labels.check }} ran within the last ' + config.integrity.notApplicableWindow
        + ' but its tables are gone now (applicable = {{ $value }}): it guards nothing.',
        uid.integrity,
      ),
      replicaDown('DeletionAuditExporterReplicaDown', 'audit', audit, 'deletion_audit_up', 'audit', uid.postDeploy),
      replicaDown('DeletionIntegrityExporterReplicaDown', 'integrity', integ, 'deletion_integrity_up', 'integrity', uid.integrity),
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
}
