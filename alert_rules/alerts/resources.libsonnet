// Resources of the application serving the endpoint: memory, baseline, trend, DB pool.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local sec = l.sec,
  local num = l.num,
  local pct = l.pct,
  local app = l.app,
  local uid = l.uid,
  local alert = l.alert,

  local memoryHigh(severity) = alert(
    'DeletionAppMemoryHigh',
    severity,
    'resources',
    'app',
    'deletion:deletion_app_memory:ratio > %s' % num(config.memory[severity]),
    config.memory['for'][severity],
    'Deletion API memory usage is high.',
    'Instance {{ $labels.instance }} uses {{ $value | humanizePercentage }} of its memory limit ('
    + severity + ' above ' + pct(config.memory[severity]) + ').',
    uid.postDeploy,
  ),


  group: {
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
}
