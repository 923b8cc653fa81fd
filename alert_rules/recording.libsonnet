// Recording rules: `level:metric:operations`. Dashboards, reports, the watch console and the
// alerts read these names (contract in the team brief); the window in a name is the nominal
// one, the expression uses the time-compressed window.
local u = import 'util.libsonnet';

function(config) {
  local d(x) = u.duration(config, x),
  local audit = config.auditExporterSelector,
  local integ = config.integrityExporterSelector,
  local app = config.appSelector,

  // Failures that count against availability: every class except errorRate.excludedErrorTypes
  // (authorization refusals: the endpoint working as intended, alerted on by
  // DeletionAuthorizationFailuresHigh instead). An empty list renders no matcher at all, so the
  // rules are then exactly the unfiltered form (a `!~""` matcher would instead drop series
  // without an error_type).
  local excluded =
    if std.objectHas(config.errorRate, 'excludedErrorTypes') then config.errorRate.excludedErrorTypes else [],
  local counted =
    assert std.all([std.length(e) > 0 && std.all([std.member('abcdefghijklmnopqrstuvwxyz0123456789_', c) for c in std.stringChars(e)]) for e in excluded])
           : 'errorRate.excludedErrorTypes: error_type names (lower case, digits, _)';
    if excluded == [] then audit else '%s,error_type!~"%s"' % [audit, std.join('|', excluded)],
  // The selector of the failures an error ratio counts (the dashboards and reports build the
  // same matcher from the same field in Python).
  countedFailuresSelector:: counted,

  // Windows every ratio is recorded over: the error-rate alerts' 5m plus the SLO pairs.
  local windows = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'],
  windows:: windows,

  local ratioRules(w) = [
    {
      record: 'deletion:deletion_requests:rate' + w,
      expr: 'sum(rate(deletion_requests_total{%s}[%s]))' % [audit, d(w)],
    },
    {
      // No failure series exist until the first failure: record 0 (not nothing) while there
      // is traffic, so that the ratio is 0 instead of absent.
      record: 'deletion:deletion_failures:rate' + w,
      // Counted failures only (see `counted`): the ratio, the error-rate, post-deploy and
      // burn-rate alerts all read this record.
      expr: |||
        sum(rate(deletion_failures_total{%(f)s}[%(w)s]))
        or
        0 * sum(rate(deletion_requests_total{%(s)s}[%(w)s]))
      ||| % { s: audit, f: counted, w: d(w) },
    },
    {
      record: 'deletion:deletion_error_ratio:rate' + w,
      expr: 'deletion:deletion_failures:rate%s / deletion:deletion_requests:rate%s' % [w, w],
    },
  ],

  local latencyRules(w) = [
    {
      record: 'deletion:deletion_duration_seconds:avg_rate' + w,
      expr: |||
        sum(rate(deletion_duration_seconds_sum{%(s)s}[%(w)s]))
        /
        sum(rate(deletion_duration_seconds_count{%(s)s}[%(w)s]))
      ||| % { s: audit, w: d(w) },
    },
  ] + [
    {
      record: 'deletion:deletion_duration_seconds:p%s_rate%s' % [q[2:], w],
      expr: 'histogram_quantile(%s, sum by (le) (rate(deletion_duration_seconds_bucket{%s}[%s])))'
            % [q, audit, d(w)],
    }
    for q in ['0.95', '0.99']
  ],

  // z-score of a recorded series against its own last `anomaly.window`.
  local zscore(series) = |||
    (%(x)s - avg_over_time(%(x)s[%(w)s]))
    /
    stddev_over_time(%(x)s[%(w)s])
  ||| % { x: series, w: d(config.anomaly.window) },

  // Records the alerts read. alerts.libsonnet puts them at the head of its single group, in this
  // order, so that every alert (and every escalation) sees the values of the same evaluation:
  // rules of one group run in sequence, separate groups in no defined order (promtool included).
  alerting:: std.flattenArrays([ratioRules(w) for w in windows]) + latencyRules('5m') + latencyRules('1h') + [
    {
      record: 'deletion:deletion_requests:rate1h_zscore1w',
      expr: zscore('deletion:deletion_requests:rate1h'),
    },
    {
      record: 'deletion:deletion_duration_seconds:avg_rate1h_zscore1w',
      expr: zscore('deletion:deletion_duration_seconds:avg_rate1h'),
    },
    {
      record: 'deletion:deletion_integrity_violations:sum',
      expr: 'sum(deletion_integrity_violations{%s})' % integ,
    },
    {
      // Per instance: memory is a per-process limit.
      record: 'deletion:deletion_app_memory:ratio',
      expr: |||
        sum by (instance) (%(mem)s{%(s)s})
        /
        sum by (instance) (%(limit)s{%(s)s})
      ||| % { mem: config.appMemoryMetric, limit: config.appMemoryLimitMetric, s: app },
    },
    {
      record: 'deletion:deletion_app_pool_usage:ratio',
      expr: |||
        sum by (instance) (%(used)s{%(s)s})
        /
        sum by (instance) (%(max)s{%(s)s})
      ||| % { used: config.appPoolInUseMetric, max: config.appPoolMaxMetric, s: app },
    },
    {
      // Memory baseline: median over memory.baselineWindow of the hourly average, so a
      // slow leak needs days to drag its own baseline up.
      record: 'instance:deletion_app_memory_bytes:baseline',
      expr: |||
        quantile_over_time(0.5,
          sum by (instance) (avg_over_time(%(mem)s{%(s)s}[%(h)s]))[%(w)s:%(h)s])
      ||| % { mem: config.appMemoryMetric, s: app, h: d('1h'), w: d(config.memory.baselineWindow) },
    },
    {
      // 1 while the newest deploy marker is younger than postDeploy.window, absent after:
      // `and on() deletion:post_deploy:active` switches the post-deploy alerts off by itself.
      record: 'deletion:post_deploy:active',
      expr: 'vector(1) and on () (time() - max(%s) < %s)'
            % [std.join(' or ', config.postDeploy.markerMetrics), u.seconds(config, config.postDeploy.window)],
    },
  ],

  // Records only dashboards, reports and the watch console read: evaluated on their own.
  groups: [
    {
      name: 'deletion-records-usage',
      interval: d(config.evaluationInterval),
      rules: [
        {
          record: 'user_type:deletion_requests:rate1h',
          expr: 'sum by (user_type) (rate(deletion_requests_total{%s}[%s]))' % [audit, d('1h')],
        },
        {
          // Counted failures only, like deletion:deletion_error_ratio:rateW.
          record: 'user_type:deletion_error_ratio:rate1h',
          expr: |||
            (
              sum by (user_type) (rate(deletion_failures_total{%(f)s}[%(w)s]))
              or
              0 * user_type:deletion_requests:rate1h
            )
            /
            user_type:deletion_requests:rate1h
          ||| % { f: counted, w: d('1h') },
        },
        {
          record: 'error_type:deletion_failures:rate5m',
          expr: 'sum by (error_type) (rate(deletion_failures_total{%s}[%s]))' % [audit, d('5m')],
        },
        {
          record: 'error_type:deletion_failures:increase1h',
          expr: 'sum by (error_type) (increase(deletion_failures_total{%s}[%s]))' % [audit, d('1h')],
        },
        {
          record: 'deletion:deletion_requests:increase1h',
          expr: 'sum(increase(deletion_requests_total{%s}[%s]))' % [audit, d('1h')],
        },
        {
          // Ratio to the same hour a week ago (1 = unchanged); absent without last week's data.
          record: 'deletion:deletion_requests:rate1h_week_over_week',
          expr: 'deletion:deletion_requests:rate1h / (deletion:deletion_requests:rate1h offset %s)'
                % d('1w'),
        },
        {
          // Usage by hour of day (UTC) and by weekday: the exporter counts exactly per row.
          record: 'hour:deletion_requests:increase1d',
          expr: 'sum by (hour) (increase(deletion_requests_by_hour_total{%s}[%s]))' % [audit, d('1d')],
        },
        {
          record: 'weekday:deletion_requests:increase1w',
          expr: 'sum by (weekday) (increase(deletion_requests_by_weekday_total{%s}[%s]))'
                % [audit, d('1w')],
        },
      ],
    },
    {
      name: 'deletion-records-breakdown',
      interval: d(config.evaluationInterval),
      rules: [
        {
          record: 'user_type:deletion_duration_seconds:p95_rate1h',
          expr: |||
            histogram_quantile(0.95,
              sum by (user_type, le) (rate(deletion_duration_seconds_bucket{%s}[%s])))
          ||| % [audit, d('1h')],
        },
        {
          // "Complex deletions": only cascades of at least the large-cascade threshold.
          record: 'deletion:deletion_large_cascade_duration_seconds:p95_rate1h',
          expr: |||
            histogram_quantile(0.95,
              sum by (le) (rate(deletion_large_cascade_duration_seconds_bucket{%s}[%s])))
          ||| % [audit, d('1h')],
        },
        {
          record: 'category:deletion_integrity_violations:sum',
          expr: 'sum by (category) (deletion_integrity_violations{%s})' % integ,
        },
      ],
    },
  ],
}
