// Latency: the p95 ladder and the average target.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local num = l.num,
  local audit = l.audit,
  local uid = l.uid,
  local alert = l.alert,
  local guard = l.guard,
  local latWindow = l.latWindow,

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


  group: {
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
}
