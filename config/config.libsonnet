// The one source of every threshold, window and selector in deletion-monitoring.
//
// Rules (alert_rules/), the Alertmanager tree (alertmanager/), dashboards (dashboards/) and the
// Python reports all read this object; nothing else in the repository may hard-code a number
// that lives here. Python reads it through deletion_monitor.config.load_config(), which also
// applies the spec's environment overrides (ERROR_RATE_THRESHOLD, RESPONSE_TIME_THRESHOLD,
// CHECK_INTERVAL) and the demo's TIME_COMPRESSION, so a render with an override moves the alert,
// the dashboard colour and the report verdict together.
//
// Units: ratios are fractions (0.01 = 1 %), durations are seconds, sizes are bytes.
// "spec" below means ../shared/mission/monitoring-strategy.md.
{
  _config+:: {
    // --- Where the data comes from -------------------------------------------------------
    // Prometheus job names of this project's exporters (docker-compose.yml and the demo use these).
    auditExporterSelector: 'job="deletion-audit-exporter"',
    integrityExporterSelector: 'job="deletion-integrity-exporter"',
    // The application that serves DELETE /api/users/{id}. Its process metrics come from the
    // standard prometheus-client process/GC collectors, its pool metrics from the app itself
    // (demo/ exports these names; adapt the selectors to your own application's exporter).
    appSelector: 'job="deletion-api"',
    appMemoryMetric: 'process_resident_memory_bytes',
    // The memory the app may use (container limit or cgroup). A gauge the app exports; without
    // one, memory-percentage alerts cannot be evaluated and say so via AppMemoryLimitUnknown.
    appMemoryLimitMetric: 'deletion_app_memory_limit_bytes',
    appGcCollectionsMetric: 'python_gc_collections_total',
    appPoolInUseMetric: 'deletion_app_db_pool_connections_in_use',
    appPoolMaxMetric: 'deletion_app_db_pool_connections_max',
    // postgres_exporter (prometheus-community), for database-side context on dashboards.
    postgresExporterSelector: 'job="postgres"',
    // Label that identifies the monitored service in every alert, for inhibition and routing.
    serviceName: 'user-deletion',

    // --- Error rate (spec 6.1 "Alert Conditions" and "Alert Severity Levels") -----------------
    // Steady state: info > 0.5 %, warning > 1 %, critical > 2 % (spec "Alert Severity Levels").
    errorRate: {
      info: 0.005,
      warning: 0.01,
      critical: 0.02,
      // How long each level must hold before it fires. 10 min keeps one failed deletion in a
      // quiet minute from alerting; the post-deployment ladder below is tighter on purpose.
      'for': { info: 900, warning: 600, critical: 300 },
    },
    // Post-deployment ladder (spec 6.1, first 24-48 h): > 1 % for 5 min critical, > 0.5 % for
    // 10 min warning. Active for postDeployWindow after a deploy, then silent by itself.
    postDeploy: {
      window: 48 * 3600,  // spec: "Immediate Monitoring (24-48 hours)"
      errorRateCritical: 0.01,
      errorRateCriticalFor: 300,
      errorRateWarning: 0.005,
      errorRateWarningFor: 600,
    },
    // The window the error-rate alerts measure over: 5 min is the shortest that still holds
    // several deletions at realistic traffic and matches the spec's "for 5 minutes".
    errorRateWindow: '5m',
    // Rare-endpoint guard: no error-rate or burn-rate alert below this many deletions per second
    // over the alert window (0.1/min ~ 6 per hour). Two failures out of three requests at night
    // must not page anyone; they still show on dashboards and in the SLO budget.
    minRequestRate: 1 / 600,

    // --- Failure classes (spec "Failure Classification") ---------------------------------------
    timeoutsPerHour: { warning: 5 },  // spec: "Timeout errors > 5 per hour = Performance Alert"
    authorizationFailuresPerHour: { warning: 10 },  // spec: "> 10 per hour = Security Alert"

    // --- Latency (spec "Performance Targets" and "Alert Severity Levels") ---------------------
    latency: {
      averageTarget: 2,  // spec: average deletion time < 2 s
      p95Target: 5,  // spec: P95 deletion time < 5 s
      // Response-time ladder on p95 (spec: info > 3 s, warning > 5 s, critical > 10 s).
      // RESPONSE_TIME_THRESHOLD (ms) overrides `info`, as the spec's monitor:immediate did.
      info: 3,
      warning: 5,
      critical: 10,
      'for': { info: 900, warning: 600, critical: 300 },
      window: '5m',
    },
    // Histogram buckets of deletion_duration_seconds (the exporter's --buckets default). Every
    // latency threshold above must be a bucket boundary so that "above 5 s" is exact.
    durationBuckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30],

    // --- Memory (spec "Memory Usage During Complex Deletions") ---------------------------------
    memory: {
      warning: 0.80,  // spec: > 80 % warning
      critical: 0.90,  // spec: > 90 % critical
      'for': 300,
      // spec: "Memory increase > 30 % from baseline = Investigation Alert" (info). Baseline is
      // the 7-day median of the 1h average, so a slow leak cannot become its own baseline fast.
      baselineIncrease: 0.30,
      baselineWindow: '7d',
      baselineFor: 1800,
      // spec "Memory usage increase < 20 % from baseline" target, shown on dashboards.
      baselineIncreaseTarget: 0.20,
      // predict_linear horizon: alert (info) if memory will reach its limit within 4 h.
      predictHorizon: 4 * 3600,
    },

    // --- Database connection pool (spec: pool usage < 80 %) ------------------------------------
    pool: { warning: 0.80, 'for': 600 },

    // --- Data integrity (spec "Data Quality Targets" and severity levels) ----------------------
    integrity: {
      // Orphaned records: zero tolerance (spec). Any orphan is at least a warning.
      orphanTolerance: 0,
      warning: 5,  // spec: violations > 5 warning
      critical: 10,  // spec: violations > 10 critical (the old scripts used >= 10; we keep > 10)
      // spec: detection time < 15 min for integrity issues. Checks must have succeeded within
      // this age or IntegrityChecksStale fires.
      maxResultAge: 900,
      'for': 0,
    },

    // --- SLO (spec "Deletion Success Rate > 99 %") ---------------------------------------------
    slo: {
      target: 0.99,
      period: '30d',
      // Multi-window multi-burn-rate (Google SRE workbook): 2 % budget in 1 h and 5 % in 6 h page;
      // 10 % in 1 d and 10 % in 3 d open a ticket.
      burnRates: [
        { long: '1h', short: '5m', factor: 14.4, severity: 'critical' },
        { long: '6h', short: '30m', factor: 6, severity: 'critical' },
        { long: '1d', short: '2h', factor: 3, severity: 'warning' },
        { long: '3d', short: '6h', factor: 1, severity: 'warning' },
      ],
    },

    // --- Escalation (spec "Alert Routing and Escalation") --------------------------------------
    escalation: {
      senior: 15 * 60,  // spec: not resolved in 15 min -> senior engineer
      manager: 30 * 60,  // spec: not resolved in 30 min -> manager
    },

    // --- Staleness and meta-monitoring ---------------------------------------------------------
    // Audit data is stale when the exporter has not polled successfully for this long.
    auditMaxPollAge: 300,
    exporterDownFor: 300,

    // --- Anomalies (spec "Trend Analysis", "Unusual Usage Patterns") --------------------------
    anomaly: { zScore: 3, window: '1w', 'for': 1800 },

    // --- Rule evaluation ------------------------------------------------------------------------
    // CHECK_INTERVAL (seconds) overrides this: the spec's monitor:immediate check interval.
    evaluationInterval: 60,

    // --- Demo time compression ------------------------------------------------------------------
    // 1 in production. The demo renders rules with e.g. 60 so that a 15 min escalation plays out
    // in 15 s; every duration above is divided by this factor when rendered (windows too).
    timeCompression: 1,

    // --- Links ---------------------------------------------------------------------------------
    runbookBaseUrl: 'https://github.com/deletion-monitoring/deletion-monitoring/blob/main/docs/runbooks/',
    grafanaBaseUrl: 'http://localhost:3000',
    dashboardUids: {
      postDeploy: 'deletion-post-deploy',
      integrity: 'deletion-integrity',
      usage: 'deletion-usage',
      executive: 'deletion-executive',
    },

    // --- Retention (spec "Data Retention Policies") ---------------------------------------------
    retention: {
      prometheusMetrics: '365d',  // spec: performance metrics 1 year
      integrityReports: '730d',  // spec: integrity reports 2 years
      monitoringLogs: '90d',  // spec: monitoring logs 90 days
      auditLog: '7y (the application owns this table and its retention)',
    },

    // --- Integrity report severity (the one-shot check-integrity command) ---------------------
    report: { warningIssues: 5, criticalIssues: 10 },
  },
}
