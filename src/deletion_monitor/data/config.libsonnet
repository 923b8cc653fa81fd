// The one source of every threshold, window and selector in deletion-monitoring.
//
// Rules (alert_rules/), the Alertmanager tree (alertmanager/), dashboards (dashboards/) and the
// Python reports all read this object; nothing else in the repository may hard-code a number
// that lives here. Python reads it through deletion_monitor.common.config.load_config(), which also
// applies the spec's environment overrides (ERROR_RATE_THRESHOLD, RESPONSE_TIME_THRESHOLD,
// CHECK_INTERVAL) and the demo's TIME_COMPRESSION, so a render with an override moves the alert,
// the dashboard colour and the report verdict together.
//
// Units: ratios are fractions (0.01 = 1 %), durations are seconds, sizes are bytes.
// "spec" below means the post-deployment monitoring strategy this bundle implements (README).
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
    // one, the memory-percentage alerts (DeletionAppMemoryHigh, DeletionAppMemoryFillingUp)
    // cannot be evaluated; DeletionAppMemoryAboveBaseline still works (it needs no limit).
    appMemoryLimitMetric: 'deletion_app_memory_limit_bytes',
    appGcCollectionsMetric: 'python_gc_collections_total',
    // CPU seconds (prometheus-client process collector) and the cores the app may use (its
    // container's CPU limit, exported by the app like the memory limit).
    appCpuMetric: 'process_cpu_seconds_total',
    appCpuLimitMetric: 'deletion_app_cpu_limit_cores',
    // Histogram of the time spent in each garbage collection, by generation (the demo app times
    // collections with gc.callbacks; prometheus-client counts them but does not time them).
    appGcDurationMetric: 'deletion_app_gc_duration_seconds',
    // Histogram of the execution time of the app's database statements (the deletion's queries).
    appDbQueryDurationMetric: 'deletion_app_db_query_duration_seconds',
    appPoolInUseMetric: 'deletion_app_db_pool_connections_in_use',
    appPoolMaxMetric: 'deletion_app_db_pool_connections_max',
    // postgres_exporter (prometheus-community), for database-side context on dashboards.
    postgresExporterSelector: 'job="postgres"',
    // Prometheus and Alertmanager scraping themselves (meta-monitoring: rule evaluation
    // failures, failed notifications). Job names as in prometheus/prometheus.yml.
    prometheusSelector: 'job="prometheus"',
    alertmanagerSelector: 'job="alertmanager"',
    // Blackbox probe that sends DELETE /api/users/{id} with a bogus token; success = 401/403
    // (the blackbox module's valid_status_codes). Anything else is an authorization hole.
    authProbeSelector: 'job="deletion-auth-probe"',
    // Target labels that tell two replicas of the same exporter apart (a pair of audit exporters
    // on one table, or two integrity exporters, for availability). Their series are otherwise
    // identical, so every rule, dashboard and report collapses them (max without these labels)
    // before it sums: without that, every sum(rate(...)) would count each deletion twice.
    replicaLabels: ['instance', 'pod'],
    // Label that identifies the monitored service in every alert, for inhibition and routing.
    serviceName: 'user-deletion',

    // --- Error rate (R12 "Alert Conditions" and "Alert Severity Levels") -----------------
    // Steady state: info > 0.5 %, warning > 1 %, critical > 2 % (R12 "Alert Severity Levels").
    // Detection (docs/alerting.md "Detection: fast where traffic holds the evidence, significant
    // where it is thin"): a level fires on the FAST path (the ratio over errorRateWindow above the
    // level, held errorRate.duration - window, with at least minFailures.fast failures in the
    // window) or on the SLOW path (over an evidence window, at least minFailures.slow failures and
    // a Wilson lower bound of the ratio above the level).
    errorRate: {
      info: 0.005,
      warning: 0.01,  // ERROR_RATE_THRESHOLD (percent) overrides this level
      critical: 0.02,
      // The spec's "for N minutes", counted from the start of the fault: the 5 min window is the
      // first 5 minutes, the alert's `for` is the rest (duration - errorRateWindow). So a fault
      // just above a level fires 5 min (critical), 10 min (warning) or 15 min (info) after it
      // starts, not window + duration.
      duration: { info: 900, warning: 600, critical: 300 },
      // Failure classes (error_type) that are not errors of the availability SLI: the error
      // ratio, success rate and error budget (recording rules, error-rate/post-deploy/burn-rate
      // alerts, dashboards, watch, reports) leave them out. A 401/403 to a bogus or missing token
      // or a non-admin caller is the endpoint working as intended and says nothing about whether
      // deletions work; an authorization attack must not page on-call through the error rate.
      // Those refusals are still counted (failure-mix panels, per-class counts) and alerted by
      // DeletionAuthorizationFailuresHigh (security channel). [] counts every failure.
      excludedErrorTypes: ['authorization'],
      minFailures: {
        // Fast path: a 5 min ratio is evidence only with this many failures in it. At 0.3 %
        // ordinary failures, two or three failures in 5 min happen several times a week at
        // 3 deletions/min (two read as a 13 % error rate); 10 do not happen without a fault.
        // Ten failures a window is ~2 deletions/s for 2 % over 5 min (the demo's 5/s qualifies).
        fast: 10,
        // Significance path: at least this many failures in the evidence window AND the
        // window's Wilson lower bound above the level. Five: with three, healthy traffic of
        // ~40 deletions an hour (mornings, evenings) shows 3 failures often enough that 1 of 20
        // emulated weeks paged on the 1 % post-deploy ladder; with five, 0 of 200
        // (bench/bench_detection.py).
        significant: 5,
        // Majority path: "every deletion is failing" - at least this many failures and more
        // than majorityRatio of the window's deletions failed. A total outage at 1 deletion /
        // 20 min pages with its third failure; one or two unlucky deletions never do.
        majority: 3,
      },
      majorityRatio: 0.5,
      // Evidence windows of the significance and majority paths; the shortest that proves the
      // level wins. Longer windows prove smaller excesses at thin traffic (5 % at 3/min is
      // significant above 2 % after a median of 1 h, p90 2.3 h, bench/bench_detection.py).
      evidenceWindows: ['1h', '6h'],
      // ...each confirmed by a shorter window (as a burn-rate pair): the evidence window's path
      // holds unless the short window has deletions and its ratio is at or below the level. So a
      // fixed fault stops proving itself with the first clean deletions instead of when the 6 h
      // window has drained (hours at thin traffic, minutes in the compressed demo).
      confirmWindows: { '1h': '5m', '6h': '30m' },
      // z of the one-sided Wilson score lower bound (3.1: 1 in 1000 that a level is "proven"
      // although the true ratio is at the level).
      significanceZ: 3.1,
      // Hysteresis: a firing level stays firing while the ratio over this window is still above
      // it with at least minFailures.majority failures, though the evidence of a thin window
      // dips (5 % at 3/min holds ~9 failures an hour, rarely fewer than 3).
      hysteresisWindow: '1h',
      // ...and keep_firing_for beyond that: a sustained fault does not resolve and re-page for
      // a minute of missing evidence, so its escalation clock keeps running. Also the delay
      // before a fixed fault resolves (plus the hysteresis window draining).
      keepFiringFor: 600,
    },
    // Post-deployment ladder (spec 6.1, first 24-48 h): > 1 % for 5 min critical, > 0.5 % for
    // 10 min warning. Active for postDeploy.window after a deploy, then silent by itself
    // (the deletion:post_deploy:active recording rule; docs/alerting.md "Two phases"). While it
    // is active the steady-state ladder is silent: it covers every level the steady one has
    // (0.5 % and up), so one breach pages once, from the deploy ladder.
    postDeploy: {
      window: 48 * 3600,  // R13: "Immediate Monitoring (24-48 hours)"
      // What marks a deploy: the newest timestamp among these series. The audit exporter
      // publishes the first time each app_version appears in the audit log; a deploy pipeline
      // may push its own deletion_deploy_timestamp_seconds (e.g. to a Pushgateway) to start the
      // phase before the first deletion of the new version. See docs/alerting.md.
      markerMetrics: [
        // From auditExporterSelector (late-bound $), so a mixin override of the selector moves it.
        'deletion_app_version_first_seen_timestamp_seconds{%s}' % $._config.auditExporterSelector,
        'deletion_deploy_timestamp_seconds',
      ],
      errorRateCritical: 0.01,  // R13: > 1 % ... critical; ERROR_RATE_THRESHOLD overrides it
      errorRateCriticalFor: 300,  // R13: "for 5 minutes" (from fault start, as errorRate.duration)
      errorRateWarning: 0.005,  // R13: > 0.5 % ... warning
      errorRateWarningFor: 600,  // R13: "for 10 minutes"
    },
    // The window the error-rate fast path measures over: 5 min, the spec's shortest duration.
    errorRateWindow: '5m',
    // Rare-endpoint guard of the burn-rate alerts (and the p99 warning): no alert below this
    // many deletions per second over the window (0.1/min ~ 6 per hour). Written as 5.5 per hour
    // rather than 1/600: rate() over exactly 6 deletions in an hour gives 6/3600, which the
    // rendered 12-digit constant 0.00166666666667 exceeds; half a deletion of slack also absorbs
    // rate()'s extrapolation at the window edges.
    minRequestRate: 5.5 / 3600,
    // ...and at least this many deletions inside the window (the long window of a burn-rate pair).
    // 9.5 means "10 deletions": 10/300 rendered to 12 digits is above 10/300 itself, and
    // extrapolation moves a count of 10 by a fraction either way.
    minRequestsPerWindow: 9.5,

    // --- Failure classes (R2 "Failure Classification") ---------------------------------------
    // Counted over a sliding hour (window), compared after rounding: increase() extrapolates
    // 5 timeouts in an hour to ~5.08, which must not count as "more than 5". `for` is 0 because
    // the hour window already is the duration the spec asks for.
    timeoutsPerHour: { warning: 5, window: '1h', 'for': 0 },  // R14: "Timeout errors > 5 per hour"
    // R15: "Authorization failures > 10 per hour = Security Alert".
    authorizationFailuresPerHour: { warning: 10, window: '1h', 'for': 0 },

    // --- Latency (R16 "Performance Targets" and "Alert Severity Levels") ---------------------
    latency: {
      averageTarget: 2,  // R16: average deletion time < 2 s
      p95Target: 5,  // R16: P95 deletion time < 5 s
      // Response-time ladder on p95 (R17: info > 3 s, warning > 5 s, critical > 10 s).
      // RESPONSE_TIME_THRESHOLD (ms) overrides `warning` (src/deletion_monitor/common/config.py).
      // Every level is a bucket boundary, so "p95 above T" is exactly "more than 5 % of the
      // deletions slower than T": the alerts count those slow deletions from the buckets.
      info: 3,
      warning: 5,
      critical: 10,
      // Held from the start of the slowdown, as errorRate.duration: the window is the first
      // 5 min, `for` the rest.
      duration: { info: 900, warning: 600, critical: 300 },
      // DeletionLatencyAverageHigh: average above averageTarget held this long.
      averageFor: 600,
      window: '5m',
      // DeletionLatencyAverageHigh needs this many deletions in its window.
      minRequestsPerWindow: 5,
      // A p95 over 15 deletions is the slowest one: the p95 ladder also needs this many
      // deletions slower than the level in the 5m window (fast path), so one 30 s timeout
      // pages nobody; ...
      minSlow: 5,
      // ... or, where traffic is thin, over an evidence window at least minSlowEvidence slow
      // deletions AND the share of slow deletions above 5 % at its Wilson lower bound (z as
      // errorRate.significanceZ).
      evidenceWindows: ['1h', '6h'],
      confirmWindows: { '1h': '5m', '6h': '1h' },  // as errorRate.confirmWindows (p95 records)
      minSlowEvidence: 5,
      // Hysteresis as errorRate: a firing level holds while the p95 over this window is above
      // it with minSlowEvidence slow deletions, then keep_firing_for.
      hysteresisWindow: '1h',
      keepFiringFor: 600,
    },
    // Histogram buckets of deletion_duration_seconds (the exporter's --buckets default). Every
    // latency threshold above must be a bucket boundary so that "above 5 s" is exact.
    durationBuckets: [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 20, 30],

    // --- Memory (R8 "Memory Usage During Complex Deletions") ---------------------------------
    memory: {
      warning: 0.80,  // R19: > 80 % warning
      critical: 0.90,  // R19: > 90 % critical
      // A GC cycle or one large cascade deletion spikes memory for seconds, not minutes, so
      // both levels wait minutes. Critical waits 3 min, not 5: the spec's mean time to alert is
      // < 5 minutes, and a page arrives after scrape (<= 15 s) + evaluation (<= 60 s) + `for` +
      // the critical route's group_wait (10 s): 3 min keeps that under 4m30s, 5 min took ~6.
      // Warning keeps 5 min (Slack, nobody is woken).
      'for': { warning: 300, critical: 180 },
      // R20: "Memory increase > 30 % from baseline = Investigation Alert" (info). Baseline is
      // the 7-day median of the 1h average, so a slow leak cannot become its own baseline fast.
      baselineIncrease: 0.30,
      baselineWindow: '7d',
      baselineFor: 1800,  // 30 min above the baseline: a trend, not one complex deletion
      // R20 "Memory usage increase < 20 % from baseline" target, shown on dashboards.
      baselineIncreaseTarget: 0.20,
      // predict_linear horizon: alert (info) if memory will reach its limit within 4 h,
      // extrapolating the trend of the last predictWindow, held for predictFor.
      predictHorizon: 4 * 3600,
      predictWindow: '1h',
      predictFor: 1800,
    },

    // --- Database connection pool (R21: pool usage < 80 %) ------------------------------------
    pool: { warning: 0.80, 'for': 600 },

    // --- p99 response time (R18 "Response Times: Average, P95, P99") ----------------------------
    // The spec sets no p99 target. The recorded p99 above 10 s (the spec's "severe degradation"
    // response time, a durationBuckets boundary) for 10 min is a warning: one deletion in a
    // hundred is that slow while the p95 ladder may still be quiet. A p99 needs more requests
    // than a p95 to mean anything: at least 20 deletions in the window.
    latencyP99: { warning: 10, 'for': 600, window: '5m', minRequestsPerWindow: 20 },

    // --- CPU, GC, query time, utilisation (R22 "System Resources", "Garbage Collection
    // Impact", "Database Performance", "System Resource Utilization < 70 % average") ---------
    // The app's CPU is rate(appCpuMetric) (prometheus-client's process collector) divided by
    // the cores it may use (appCpuLimitMetric, a gauge the app exports like its memory limit).
    // The spec gives no CPU level; node-mixin style: warning at 80 % held 15 min (a busy minute
    // is normal, a quarter of an hour near the limit means latency is next). No critical: CPU is
    // a cause, and the p95/error-rate alerts page on the symptom users feel.
    cpu: { warning: 0.80, 'for': 900, window: '5m' },
    // R23 "System Resource Utilization: < 70 % average": a capacity target, not an incident.
    // Info (digest) when the 1-day average of CPU or memory use exceeds it for an hour.
    utilisation: { target: 0.70, window: '1d', 'for': 3600 },
    // R22 "Garbage Collection Impact: Track GC frequency and duration". No level in the spec:
    // - time: more than 10 % of wall time inside collections (appGcDurationMetric, the demo
    //   app's gc.callbacks histogram) over 5 min, held 15 min, is a warning (every request
    //   stalls behind it; at 25 % latency alerts usually follow);
    // - frequency: full (generation 2) collections above 2 per minute held 30 min is info: gen 2
    //   runs only after ~100 young collections with many surviving objects, so a sustained rate
    //   that high means objects pile up (often a leak, cf. DeletionAppMemoryFillingUp).
    gc: {
      timeRatioWarning: 0.10,
      timeFor: 900,
      fullCollectionsPerMinute: 2,
      frequencyFor: 1800,
      window: '5m',
    },
    // R22 "Database Performance: query execution times". No level in the spec; derived from
    // the deletion targets: one query taking 1 s at p95 spends half the 2 s average-deletion
    // budget (warning), 2.5 s the whole of it in one statement (critical would be the p95/average
    // deletion alerts, which page on the symptom; this one stays a warning). Both are buckets of
    // dbQueryBuckets (exact, not interpolated). Needs this many queries in the window.
    dbQuery: { p95Warning: 1, 'for': 600, window: '5m', minQueriesPerWindow: 20 },
    dbQueryBuckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    // R3 "Error Trends: monitor rate of change in error patterns" (rate and latency trends
    // are DeletionRateAnomaly / DeletionLatencyAnomaly). Per failure class: the last hour's
    // failure rate is at least `factor` times its rate over the last day, with at least
    // `minFailures` failures in that hour (3 failures at night are no trend). Info: a trend to
    // look at in the digest; the error-rate ladder pages on the level itself.
    errorTrend: { factor: 3, window: '1h', baseline: '1d', minFailures: 5, 'for': 900 },
    // R72 "System Uptime > 99.9 %", measured by the blackbox probe of the endpoint
    // (authProbeSelector: probe_success is 0 when the endpoint does not answer 401/403 to a
    // bogus token, down included). Alert on the budget burn (SRE workbook ticket pair): failed
    // probes over both `long` and `short` above factor x (1 - target) = 0.3 % (about 4 min a
    // day), i.e. 10 % of the 30-day budget spent in a day. The immediate "probe failing" page is
    // DeletionEndpointAuthProbeFailed.
    uptime: { target: 0.999, long: '1d', short: '2h', factor: 3, 'for': 3600 },

    // --- Data integrity (R39 "Data Quality Targets" and severity levels) ----------------------
    integrity: {
      // Orphaned records: zero tolerance (R38). Any orphan is at least a warning.
      orphanTolerance: 0,
      // Violation categories that mean "rows left behind by a deletion" (R38 "Orphaned
      // Record Detection Queries": FK violations, orphaned accounts/sessions/addresses,
      // dispatches, file uploads).
      orphanCategories: ['foreign_key', 'cascade', 'manual_cleanup'],
      warning: 5,  // R24: violations > 5 warning
      critical: 10,  // R24: violations > 10 critical (the old scripts used >= 10; we keep > 10)
      // R43: detection time < 15 min for integrity issues. Checks must have succeeded within
      // this age or IntegrityChecksStale fires.
      maxResultAge: 900,
      'for': 0,
      // A check erroring (deletion_integrity_check_up == 0) for this long: a few runs in a
      // row, not one query that timed out while the database was busy.
      checkFailingFor: 300,
      // DeletionCompletenessAuditFailed / DeletionForbiddenDeletion count over this window,
      // so one event keeps the alert firing long enough to page and escalate (15/30 min).
      completenessWindow: '1h',
      forbiddenWindow: '1h',
      // Non-orphan violations (every category outside orphanCategories): zero tolerance too
      // (R39 "Integrity Violations: 0 tolerance"), warning at the first one; the > 5 / > 10
      // ladder above still applies to the total.
      violationTolerance: 0,
      // R44 "Resolution Time < 4 hours for data integrity issues": a check that has reported
      // violations continuously for this long has missed the target (warning: a ticket for
      // the data owner, nobody is woken; the data is wrong already, not getting worse).
      resolutionTarget: 4 * 3600,
      // A check that applied within this window and no longer does (its tables are gone:
      // renamed or dropped by a migration) stops guarding anything without failing: warning
      // after checkFailingFor. A week: long enough to catch a migration shipped on a Friday,
      // short enough that a table dropped on purpose stops warning by itself.
      notApplicableWindow: '7d',
    },

    // --- SLO (R71 "Deletion Success Rate > 99 %") ---------------------------------------------
    slo: {
      target: 0.99,
      period: '30d',
      // Multi-window multi-burn-rate (Google SRE workbook): 2 % budget in 1 h and 5 % in 6 h page;
      // 10 % in 1 d and 10 % in 3 d open a ticket. `for` (seconds) as in the workbook: short for
      // pages (the short window already proves it is still happening), longer for tickets.
      // The rare-endpoint guard (minRequestRate/minRequestsPerWindow) applies to `long`.
      burnRates: [
        { long: '1h', short: '5m', factor: 14.4, severity: 'critical', 'for': 120 },
        { long: '6h', short: '30m', factor: 6, severity: 'critical', 'for': 900 },
        { long: '1d', short: '2h', factor: 3, severity: 'warning', 'for': 3600 },
        { long: '3d', short: '6h', factor: 1, severity: 'warning', 'for': 10800 },
      ],
    },

    // --- Incidents (docs/alerting.md "Incidents and grouping") --------------------------------
    // An incident is one problem of the endpoint as the people paged for it see it: every alert
    // one fault raises belongs to the same incident. alert() (alert_rules/alerts/lib.libsonnet)
    // sets the label incident = incidents[category]; Alertmanager groups the PagerDuty and Slack
    // routes by (service, incident), so one fault is one PagerDuty incident per escalation
    // level (one dedup key), and the escalation rules run one clock per incident. availability
    // is the endpoint's service level, its two SLIs: deletions failing or too slow. The error
    // ratio, the post-deploy ladder and the burn rates (category slo) of a failing deletion are
    // one incident, and so are latency and timeouts: a deletion slower than the 10 s critical
    // level hits the 10 s statement timeout and fails, so a severe latency fault raises the
    // error ratio too (one fault, one page).
    incidents: {
      availability: 'availability',
      slo: 'availability',
      latency: 'availability',
      resources: 'resources',
      integrity: 'integrity',
      security: 'security',
      meta: 'monitoring',  // exporters, their databases, Prometheus, Alertmanager
      anomaly: 'anomaly',  // info only: the daily digest, never a page
    },

    // --- Escalation (R27 "Alert Routing and Escalation") --------------------------------------
    // Once per incident, not once per alert: while at least one critical alert of an incident
    // has been FIRING (not pending) without a break for `senior` seconds, the incident raises
    // DeletionEscalationSenior, after `manager` seconds DeletionEscalationManager (labelled by
    // service and incident only); both resolve when the last critical alert of the incident
    // resolves. Both are >= Prometheus' for-grace-period (10m), so the clock survives a
    // Prometheus restart.
    escalation: {
      senior: 15 * 60,  // R27: not resolved in 15 min -> senior engineer
      manager: 30 * 60,  // R27: not resolved in 30 min -> manager
      // An alert keeps its incident's escalation clock running only if it stops within this
      // long of the fault stopping. The burn-rate pairs whose short window is longer (6h/30m:
      // still firing up to 30 min after a fix) would page the senior engineer or the manager
      // for a fault already fixed; they page on-call with their incident, but do not escalate.
      maxLag: 300,
    },
    // Which alerts escalate: R27 "Alert Routing and Escalation" escalates only the PagerDuty
    // (critical) path; warnings go to Slack and info to the digest, without escalation.
    escalationSeverity: 'critical',

    // --- Staleness and meta-monitoring ---------------------------------------------------------
    // Audit data is stale when the exporter has not polled successfully for this long.
    auditMaxPollAge: 300,
    // Exporter scrape failing / database unreachable this long before alerting: rides out an
    // exporter restart or a database failover. With replicas (several targets of one job), the
    // critical alerts fire only when no replica works; one replica of several down is the
    // warning Deletion*ExporterReplicaDown after the same time (the data still arrives).
    exporterDownFor: 300,
    databaseDownFor: 300,
    // Initial load of the audit exporter (deletion_audit_ready == 0 while the database answers,
    // deletion_audit_up == 1). With a checkpoint a restart takes under 1 s; without one (first
    // start, a refused checkpoint) docs/benchmarks.md measured a full aggregation of 72 s at
    // 10 M audit rows on a 2-core machine (8.5 s at 1 M): 15 min is over 10x that, so a load
    // this long is either a far larger table or a load that stalls. Warning: no deletion alert
    // can fire before the load ends.
    auditLoadMaxDuration: 900,
    // While the load progresses (rows_done grew within this window) DeletionAuditDataStale is
    // held back (no poll can succeed before the load ends); a load that stops moving is stale.
    auditLoadProgressWindow: '5m',
    // Audit rows whose tx is ahead of the cluster's current transaction id (copied from another
    // cluster): the cursor never reaches them. 2 min = several polls (5 s) and a scrape or two:
    // no transient can produce such a row, the `for` only rides out one odd poll.
    foreignTxFor: 120,
    // The audit cursor may wait behind an open transaction (toolchain-facts: lossless tailing);
    // longer than this means rows reach Prometheus late and alerts lag behind reality.
    auditMaxCursorLag: 300,
    auditCursorLagFor: 300,
    // Audit exporter checkpoints (docs/audit-log.md, "Checkpoints") are written every
    // --checkpoint-interval (60 s by default; raise this with it). None written for this long
    // (store unwritable, disk full, a grant lost) means the next restart re-aggregates the
    // whole table, or resumes from an old cursor: warning, the live counters are unaffected.
    auditCheckpointMaxAge: 900,
    // Rows the exporter could not parse, counted over this window (any is a bug upstream).
    invalidRowsWindow: '1h',
    // Prometheus failing to evaluate a rule means alerts silently do not fire.
    ruleFailuresWindow: '5m',
    // Alertmanager failing to deliver: over this window, held for notificationsFailingFor.
    notificationsFailedWindow: '15m',
    notificationsFailingFor: 300,
    // Auth probe failing this long: two probes in a row at the blackbox 60 s interval.
    authProbeFor: 120,

    // --- Anomalies (R25 "Trend Analysis", "Unusual Usage Patterns") --------------------------
    // z = (x - avg over window) / stddev over window of the 1h rate and the 1h average latency;
    // z beyond +-3 (rate) or above 3 (latency; faster is no anomaly) held for 30 min is "far
    // outside the usual band" (info only): 3 sigma covers ~99.7 % of ordinary hours.
    // The 1h average latency is recorded only for hours with deletions (absent, not 0/0 = NaN),
    // and the z-score only where the week's stddev is above 0: one empty hour (a quiet night)
    // no longer poisons the week's avg/stddev and silences DeletionLatencyAnomaly for a week.
    anomaly: { zScore: 3, window: '1w', 'for': 1800 },

    // --- Rule evaluation ------------------------------------------------------------------------
    // CHECK_INTERVAL (seconds) overrides this: the spec's monitor:immediate check interval.
    evaluationInterval: 60,

    // --- Demo time compression ------------------------------------------------------------------
    // 1 in production. The demo renders rules with e.g. 60 so that a 15 min escalation plays out
    // in 15 s; every duration above is divided by this factor when rendered (windows too).
    timeCompression: 1,

    // --- Links ---------------------------------------------------------------------------------
    // Every alert's runbook_url is runbookBaseUrl + <AlertName>.md (docs/runbooks/ in this repo)
    // and its dashboard_url grafanaBaseUrl + '/d/' + one of the stable dashboardUids.
    runbookBaseUrl: 'https://github.com/deletion-monitoring/deletion-monitoring/blob/main/docs/runbooks/',
    grafanaBaseUrl: 'http://localhost:3000',
    dashboardUids: {
      postDeploy: 'deletion-post-deploy',
      integrity: 'deletion-integrity',
      usage: 'deletion-usage',
      executive: 'deletion-executive',
    },

    // --- Retention (R57 "Data Retention Policies") ---------------------------------------------
    retention: {
      prometheusMetrics: '365d',  // R57: performance metrics 1 year
      integrityReports: '730d',  // R58: integrity reports 2 years
      monitoringLogs: '90d',  // R58: monitoring logs 90 days
      auditLog: '7y (the application owns this table and its retention)',
    },

    // --- High availability of the monitoring itself (docs/scaling.md) ---------------------------
    // Two Prometheus replicas evaluate the same rules and send to every Alertmanager of a gossip
    // cluster (prometheus/ha/); both also remote_write to the long-term store (VictoriaMetrics,
    // retention: retention.prometheusMetrics). The meta-alerts of alert_rules/alerts/monitoring_ha
    // read these. All warnings: the other replica / peer still delivers, nothing is lost yet.
    ha: {
      // The external label that tells the replicas apart. alert_relabel_configs drop it, so both
      // replicas send identical alerts (one page); remote_write drops it too, so the store's
      // deduplication (one sample per scrape interval) merges the replicas' identical series.
      replicaLabel: 'replica',
      // A Prometheus replica its peer cannot scrape: rides out a restart or a config reload.
      prometheusDownFor: 300,
      // An Alertmanager of the cluster not scraped this long.
      alertmanagerDownFor: 300,
      // A running Alertmanager seeing fewer peers than there are running Alertmanagers (split
      // brain: each half notifies on its own, every page twice), or one running without
      // clustering among several targets. Gossip converges in seconds; minutes are a real split.
      clusterSplitFor: 300,
      remoteWrite: {
        // Share of the sample sends to the long-term store that failed or were retried, over
        // `window`, held `failingFor`: a 1 % error rate for 15 min is a broken store or network
        // (the mixin's level), a single retried batch during a store restart is not.
        window: '5m',
        failingRatio: 0.01,
        failingFor: 900,
        // Newest sample appended minus newest sample sent: more than maxLag seconds behind for
        // behindFor. Prometheus keeps about 2 h of WAL: lag beyond that is lost from the store.
        maxLag: 120,
        behindFor: 900,
      },
    },

    // --- Integrity report severity (the one-shot check-integrity command) ---------------------
    report: { warningIssues: 5, criticalIssues: 10 },

    // --- Alertmanager (alertmanager/alertmanager.jsonnet, docs/alertmanager.md) ----------------
    // Non-secret settings only. Secrets (Slack webhook URL, PagerDuty routing keys, SMTP
    // password) are never here: the rendered config points at files in `secretsDir`, which
    // Alertmanager reads when it sends. Render-time env overrides: ALERT_EMAIL (digest and
    // warning address), ALERTMANAGER_SECRETS_DIR (e.g. /run/secrets for Docker secrets).
    alertmanager: {
      // One file per secret in this directory (names below); see docs/alertmanager.md.
      secretsDir: '/etc/alertmanager/secrets',
      secretFiles: {
        // The spec's SLACK_WEBHOOK_URL. Slack-app webhooks post only to the channel they were
        // created for: give the security channel its own file if yours is such a webhook.
        slackOps: 'slack_webhook_url',
        slackSecurity: 'slack_webhook_url',
        // The spec's PAGERDUTY_KEY, one Events v2 integration key per escalation level.
        pagerdutyOncall: 'pagerduty_oncall_routing_key',
        pagerdutySenior: 'pagerduty_senior_routing_key',
        pagerdutyManager: 'pagerduty_manager_routing_key',
        smtpPassword: 'smtp_auth_password',
        // Bearer token of the dead man's switch that receives the Watchdog heartbeat.
        heartbeatToken: 'heartbeat_token',
      },
      slack: {
        opsChannel: '#ops-alerts',  // R30: "Alerts sent to #ops-alerts channel"
        securityChannel: '#security-alerts',
      },
      pagerduty: {
        // Events API v2 endpoint (Alertmanager's own default); tests point it at a local sink.
        url: 'https://events.pagerduty.com/v2/enqueue',
      },
      email: {
        to: 'ops@ready-set.app',  // R30: ALERT_EMAIL (daily digest)
        from: 'alertmanager@ready-set.app',
        smarthost: 'smtp.ready-set.app:587',
        authUsername: 'alertmanager@ready-set.app',
        requireTls: true,
      },
      // Dead man's switch (healthchecks.io, Dead Man's Snitch, ...): pages when the Watchdog
      // heartbeat stops arriving, i.e. when Prometheus or Alertmanager itself is down.
      heartbeat: { url: 'https://heartbeat.ready-set.app/deletion-monitoring' },
      // Info alerts are mailed once a day in this local window. The window length is also the
      // digest route's group_interval, so exactly one flush lands in each window (see the
      // jsonnet for why). Needs tzdata wherever Alertmanager runs.
      digest: { start: '09:00', windowMinutes: 15, location: 'America/Los_Angeles' },
    },
  },
}
