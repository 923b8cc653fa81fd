// Recording rules: `level:metric:operations`. Dashboards, reports, the watch console and the
// alerts read these names (contract in the team brief); the window in a name is the nominal
// one, the expression uses the time-compressed window.
local u = import 'util.libsonnet';

function(config) {
  local d(x) = u.duration(config, x),
  local audit = config.auditExporterSelector,
  local integ = config.integrityExporterSelector,
  local app = config.appSelector,
  // Replicas of the audit exporter serve identical series: collapse them before every sum.
  local dedup(expr) = u.dedup(config, expr),
  local num(x) = if x == 0 then '0' else '%.12g' % x,

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

  // A count over window w from a recorded per-second rate (after time compression the rate
  // times the compressed window is still the count of events in the window).
  local count(rateSeries, w) = '(%s * %s)' % [rateSeries, num(u.seconds(config, w))],
  count:: count,

  // One-sided Wilson score lower bound of a proportion f/n (f, n counts, z its quantile),
  // in count form: (f + z^2/2 - z sqrt(f (n - f) / n + z^2/4)) / (n + z^2). Small counts give a
  // wide interval, so two failures out of fifteen deletions prove much less than the 13 % they
  // read as; 3 failures out of 3 still prove a high ratio. n - f clamped at 0 (extrapolation can
  // make f slightly larger than n).
  local wilsonLower(f, n, z) =
    |||
      (
        %(f)s + %(z2h)s
        - %(z)s * sqrt(%(f)s * clamp_min(%(n)s - %(f)s, 0) / %(n)s + %(z2q)s)
      )
      /
      (%(n)s + %(z2)s)
    ||| % { f: f, n: n, z: num(z), z2: num(z * z), z2h: num(z * z / 2), z2q: num(z * z / 4) },
  wilsonLower:: wilsonLower,

  local ratioRules(w) = [
    {
      record: 'deletion:deletion_requests:rate' + w,
      expr: 'sum(%s)' % dedup('rate(deletion_requests_total{%s}[%s])' % [audit, d(w)]),
    },
    {
      // No failure series exist until the first failure: record 0 (not nothing) while there
      // is traffic, so that the ratio is 0 instead of absent.
      record: 'deletion:deletion_failures:rate' + w,
      // Counted failures only (see `counted`): the ratio, the error-rate, post-deploy and
      // burn-rate alerts all read this record.
      expr: |||
        sum(%(fail)s)
        or
        0 * deletion:deletion_requests:rate%(n)s
      ||| % {
        fail: dedup('rate(deletion_failures_total{%s}[%s])' % [counted, d(w)]),
        n: w,
      },
    },
    {
      record: 'deletion:deletion_error_ratio:rate' + w,
      expr: 'deletion:deletion_failures:rate%s / deletion:deletion_requests:rate%s' % [w, w],
    },
  ] + (if w == '5m' then [] else [
         {
           // Lower confidence bound of the error ratio (errorRate.significanceZ): what the
           // deletions seen in the window prove about it. Absent without deletions.
           record: 'deletion:deletion_error_ratio:wilson_lower_rate' + w,
           expr: '%s\nand on () deletion:deletion_requests:rate%s > 0\n' % [
             std.rstripChars(wilsonLower(
               count('deletion:deletion_failures:rate' + w, w),
               count('deletion:deletion_requests:rate' + w, w),
               config.errorRate.significanceZ
             ), '\n'),
             w,
           ],
         },
       ]),

  // Histogram thresholds of the p95 ladder: the exporter writes le="10.0", hand-written series
  // may say le="10"; the record carries the config's spelling.
  local leMatcher(t) = if std.floor(t) == t then '%s|%s.0' % [num(t), num(t)] else num(t),
  local latencyLevels = [config.latency.info, config.latency.warning, config.latency.critical],
  latencyLevels:: latencyLevels,
  local latencyWindows = std.uniq(std.sort(['5m', '1h'] + config.latency.evidenceWindows, u.toSeconds), function(x) u.toSeconds(x)),
  latencyWindows:: latencyWindows,

  // Latency records exist only where the window holds deletions: a quantile or average over no
  // deletions is 0/0 = NaN, which poisons every avg/stddev_over_time that reads it (anomaly).
  local latencyRules(w) = [
    {
      // Deletions with a recorded duration (the +Inf bucket), per second.
      record: 'deletion:deletion_duration_observations:rate' + w,
      expr: 'sum(%s)' % dedup('rate(deletion_duration_seconds_bucket{%s,le="+Inf"}[%s])' % [audit, d(w)]),
    },
    {
      record: 'deletion:deletion_duration_seconds:avg_rate' + w,
      expr: |||
        sum(%(sum)s)
        /
        (sum(%(count)s) > 0)
      ||| % {
        sum: dedup('rate(deletion_duration_seconds_sum{%s}[%s])' % [audit, d(w)]),
        count: dedup('rate(deletion_duration_seconds_count{%s}[%s])' % [audit, d(w)]),
      },
    },
  ] + [
    {
      record: 'deletion:deletion_duration_seconds:p%s_rate%s' % [q[2:], w],
      expr: |||
        histogram_quantile(%(q)s, sum by (le) (%(b)s))
        and on () deletion:deletion_duration_observations:rate%(w)s > 0
      ||| % { q: q, b: dedup('rate(deletion_duration_seconds_bucket{%s}[%s])' % [audit, d(w)]), w: w },
    }
    for q in ['0.95', '0.99']
  ] + [
    {
      // Deletions slower than each level of the p95 ladder (label le = the level), per second:
      // p95 > T is exactly "more than 5 % of the deletions slower than T" when T is a bucket
      // boundary. One rule (a record name is defined once), one series per level.
      record: 'deletion:deletion_slow_requests:rate' + w,
      expr: std.join('or\n', [
        |||
          label_replace(
            deletion:deletion_duration_observations:rate%(w)s
            - on () sum(%(b)s),
            "le", "%(t)s", "", ""
          )
        ||| % {
          w: w,
          t: num(t),
          b: dedup('rate(deletion_duration_seconds_bucket{%s,le=~"%s"}[%s])' % [audit, leMatcher(t), d(w)]),
        }
        for t in std.uniq(std.sort(latencyLevels))
      ]),
    },
  ],

  // z-score of a recorded series against its own last `anomaly.window`.
  // The stddev must be above 0: a flat week (or one sample) gives no band to be outside of.
  local zscore(series) = |||
    (%(x)s - avg_over_time(%(x)s[%(w)s]))
    /
    (stddev_over_time(%(x)s[%(w)s]) > 0)
  ||| % { x: series, w: d(config.anomaly.window) },

  // Records the alerts read. alerts.libsonnet puts them at the head of its single group, in this
  // order, so that every alert (and every escalation) sees the values of the same evaluation:
  // rules of one group run in sequence, separate groups in no defined order (promtool included).
  alerting:: std.flattenArrays([ratioRules(w) for w in windows]) + std.flattenArrays([latencyRules(w) for w in latencyWindows]) + [
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
      expr: 'sum(%s)' % dedup('deletion_integrity_violations{%s}' % integ),
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
          expr: 'sum by (user_type) (%s)' % dedup('rate(deletion_requests_total{%s}[%s])' % [audit, d('1h')]),
        },
        {
          // Counted failures only, like deletion:deletion_error_ratio:rateW.
          record: 'user_type:deletion_error_ratio:rate1h',
          expr: |||
            (
              sum by (user_type) (%(fail)s)
              or
              0 * user_type:deletion_requests:rate1h
            )
            /
            user_type:deletion_requests:rate1h
          ||| % { fail: dedup('rate(deletion_failures_total{%s}[%s])' % [counted, d('1h')]) },
        },
        {
          record: 'error_type:deletion_failures:rate5m',
          expr: 'sum by (error_type) (%s)' % dedup('rate(deletion_failures_total{%s}[%s])' % [audit, d('5m')]),
        },
        {
          record: 'error_type:deletion_failures:increase1h',
          expr: 'sum by (error_type) (%s)' % dedup('increase(deletion_failures_total{%s}[%s])' % [audit, d('1h')]),
        },
        {
          record: 'deletion:deletion_requests:increase1h',
          expr: 'sum(%s)' % dedup('increase(deletion_requests_total{%s}[%s])' % [audit, d('1h')]),
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
          expr: 'sum by (hour) (%s)' % dedup('increase(deletion_requests_by_hour_total{%s}[%s])' % [audit, d('1d')]),
        },
        {
          record: 'weekday:deletion_requests:increase1w',
          expr: 'sum by (weekday) (%s)'
                % dedup('increase(deletion_requests_by_weekday_total{%s}[%s])' % [audit, d('1w')]),
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
              sum by (user_type, le) (%s))
          ||| % dedup('rate(deletion_duration_seconds_bucket{%s}[%s])' % [audit, d('1h')]),
        },
        {
          // "Complex deletions": only cascades of at least the large-cascade threshold.
          record: 'deletion:deletion_large_cascade_duration_seconds:p95_rate1h',
          expr: |||
            histogram_quantile(0.95,
              sum by (le) (%s))
          ||| % dedup('rate(deletion_large_cascade_duration_seconds_bucket{%s}[%s])' % [audit, d('1h')]),
        },
        {
          record: 'category:deletion_integrity_violations:sum',
          expr: 'sum by (category) (%s)' % dedup('deletion_integrity_violations{%s}' % integ),
        },
      ],
    },
  ],
}
