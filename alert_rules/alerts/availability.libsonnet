// Availability: the error-rate ladder, the post-deployment ladder and the per-class hourly counts.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local num = l.num,
  local pct = l.pct,
  local audit = l.audit,
  local uid = l.uid,
  local alert = l.alert,
  local guard = l.guard,
  local errWindow = l.errWindow,

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


  group: {
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
}
