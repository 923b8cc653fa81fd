// Anomalies: z-scores of the request rate and the average latency against their last week.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local num = l.num,
  local audit = l.audit,
  local uid = l.uid,
  local alert = l.alert,

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

  group: {
    name: 'deletion-alerts-anomaly',
    rules: [
      zscoreAlert('DeletionRateAnomaly', 'deletion:deletion_requests:rate1h_zscore1w', 'both', 'request rate'),
      zscoreAlert('DeletionLatencyAnomaly', 'deletion:deletion_duration_seconds:avg_rate1h_zscore1w', 'up', 'average latency'),
    ],
  },
}
