// Performance and resources the strategy names beyond the p95/average ladder and memory:
// p99 response time, CPU, average utilisation, garbage collection, database query time, the
// trend of each failure class and the endpoint's uptime (docs/alerting.md "Coverage of the
// strategy"). Every number comes from src/deletion_monitor/data/config.libsonnet.
local recording = import '../recording.libsonnet';
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local sec = l.sec,
  local num = l.num,
  local pct = l.pct,
  local app = l.app,
  local uid = l.uid,
  local alert = l.alert,
  local guard = l.guard,
  local dedup(expr) = u.dedup(config, expr),

  local p99 = config.latencyP99,
  local cpu = config.cpu,
  local util = config.utilisation,
  local gc = config.gc,
  local q = config.dbQuery,
  local trend = config.errorTrend,
  local up = config.uptime,
  local counted = recording(config).countedFailuresSelector,
  local probe = config.authProbeSelector,

  local cpuRatio(w) = |||
    sum by (instance) (rate(%(cpu)s{%(s)s}[%(w)s]))
    /
    sum by (instance) (%(limit)s{%(s)s})
  ||| % { cpu: config.appCpuMetric, limit: config.appCpuLimitMetric, s: app, w: d(w) },

  // Failed-probe ratio over a window (probe_success is 0 or 1 per probe).
  local probeFailed(w) = '1 - avg by (instance) (avg_over_time(probe_success{%s}[%s]))' % [probe, d(w)],

  group: {
    name: 'deletion-alerts-performance',
    rules: [
      alert(
        'DeletionLatencyP99High',
        'warning',
        'latency',
        'audit',
        |||
          deletion:deletion_duration_seconds:p99_rate%(w)s > %(t)s
          and on () %(g)s
        ||| % { w: p99.window, t: num(p99.warning), g: guard(p99.window, p99.minRequestsPerWindow) },
        p99['for'],
        'Deletion p99 latency is high.',
        'The p99 duration of DELETE /api/users/{id} over ' + p99.window + ' is {{ $value | humanizeDuration }}'
        + ' (warning above ' + num(p99.warning) + 's).',
        uid.postDeploy,
      ),
      alert(
        'DeletionAppCpuHigh',
        'warning',
        'resources',
        'app',
        '(\n%s) > %s' % [cpuRatio(cpu.window), num(cpu.warning)],
        cpu['for'],
        'Deletion API CPU usage is high.',
        'Instance {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its CPU limit over '
        + cpu.window + ' (warning above ' + pct(cpu.warning) + ').',
        uid.postDeploy,
      ),
      alert(
        'DeletionAppResourceUtilisationHigh',
        'info',
        'resources',
        'app',
        |||
          label_replace((
          %(cpu)s) > %(t)s, "resource", "cpu", "", "")
          or
          label_replace((
            sum by (instance) (avg_over_time(%(mem)s{%(s)s}[%(w)s]))
            /
            sum by (instance) (%(limit)s{%(s)s})
          ) > %(t)s, "resource", "memory", "", "")
        ||| % {
          cpu: cpuRatio(util.window),
          mem: config.appMemoryMetric,
          limit: config.appMemoryLimitMetric,
          s: app,
          w: d(util.window),
          t: num(util.target),
        },
        util['for'],
        'Deletion API average resource utilisation is above target.',
        'Instance {{ $labels.instance }} averaged {{ $value | humanizePercentage }} {{ $labels.resource }}'
        + ' utilisation over the last ' + util.window + ' (target below ' + pct(util.target) + ').',
        uid.postDeploy,
      ),
      alert(
        'DeletionAppGcTimeHigh',
        'warning',
        'resources',
        'app',
        'sum by (instance) (rate(%s_sum{%s}[%s])) > %s'
        % [config.appGcDurationMetric, app, d(gc.window), num(gc.timeRatioWarning)],
        gc.timeFor,
        'Deletion API spends much of its time in garbage collection.',
        'Instance {{ $labels.instance }} spent {{ $value | humanizePercentage }} of the last '
        + gc.window + ' in garbage collection (warning above ' + pct(gc.timeRatioWarning) + ').',
        uid.postDeploy,
      ),
      alert(
        'DeletionAppFullGcFrequent',
        'info',
        'resources',
        'app',
        // Per (compressed) minute, so that the value reads as the threshold does.
        'sum by (instance) (rate(%s{%s,generation="2"}[%s])) * %s > %s'
        % [config.appGcCollectionsMetric, app, d(gc.window), num(sec(60)), num(gc.fullCollectionsPerMinute)],
        gc.frequencyFor,
        'Deletion API runs full garbage collections often.',
        'Instance {{ $labels.instance }} runs {{ $value | printf "%.1f" }} full (generation 2) collections per'
        + ' minute over the last ' + gc.window + ' (info above ' + num(gc.fullCollectionsPerMinute) + ').',
        uid.postDeploy,
      ),
      alert(
        'DeletionDbQueryLatencyHigh',
        'warning',
        // Category latency: slow statements are slow deletions, one incident with the p95/p99
        // alerts the same fault raises (config.incidents), not a second one.
        'latency',
        'app',
        |||
          histogram_quantile(0.95, sum by (le) (rate(%(m)s_bucket{%(s)s}[%(w)s]))) > %(t)s
          and on ()
          sum(rate(%(m)s_count{%(s)s}[%(w)s])) >= %(min)s
        ||| % {
          m: config.appDbQueryDurationMetric,
          s: app,
          w: d(q.window),
          t: num(q.p95Warning),
          min: num(q.minQueriesPerWindow / sec(q.window)),
        },
        q['for'],
        'Deletion database queries are slow.',
        'The p95 execution time of the deletion API database statements over ' + q.window
        + ' is {{ $value | humanizeDuration }} (warning above ' + num(q.p95Warning) + 's).',
        uid.postDeploy,
      ),
      alert(
        'DeletionFailureClassRising',
        'info',
        'anomaly',
        'audit',
        // Value: the ratio of the two rates (NaN, so silent, without any failure in the day).
        |||
          sum by (error_type) (%(now)s)
          / sum by (error_type) (%(base)s)
          > %(f)s
          and
          sum by (error_type) (%(count)s) >= %(min)s
        ||| % {
          now: dedup('rate(deletion_failures_total{%s}[%s])' % [counted, d(trend.window)]),
          base: dedup('rate(deletion_failures_total{%s}[%s])' % [counted, d(trend.baseline)]),
          count: dedup('increase(deletion_failures_total{%s}[%s])' % [counted, d(trend.window)]),
          f: num(trend.factor),
          min: num(trend.minFailures),
        },
        trend['for'],
        'A class of deletion failures is rising.',
        '{{ $labels.error_type }} failures over the last ' + trend.window + ' run at {{ $value | printf "%.1f" }}x'
        + ' their rate over the last ' + trend.baseline + ' (info above ' + num(trend.factor) + 'x, with at least '
        + num(trend.minFailures) + ' in ' + trend.window + ').',
        uid.postDeploy,
      ),
      alert(
        'DeletionEndpointUptimeBudgetBurn',
        'warning',
        'availability',
        'probe',
        |||
          (%(long)s) > %(t)s
          and
          (%(short)s) > %(t)s
        ||| % {
          long: probeFailed(up.long),
          short: probeFailed(up.short),
          t: num(up.factor * (1 - up.target)),
        },
        up['for'],
        'The deletion endpoint misses its uptime target.',
        'The probe of {{ $labels.instance }} failed {{ $value | humanizePercentage }} of the time over the last '
        + up.long + ' (and over ' + up.short + '): ' + num(up.factor) + 'x the ' + pct(1 - up.target)
        + ' the ' + pct(up.target) + ' uptime target allows.',
        uid.executive,
      ),
    ],
  },
}
