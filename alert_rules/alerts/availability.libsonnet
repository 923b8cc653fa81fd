// Availability: the error-rate ladder, the post-deployment ladder and the per-class hourly counts.
//
// Detection (docs/alerting.md "Detection"): a level fires when the deletions seen prove it,
//  - fast path, where traffic holds the evidence: the ratio over errorRateWindow (5m) above the
//    level with at least errorRate.minFailures.fast failures in it, held for the rest of the
//    spec's duration (errorRate.duration - 5m, so "> 1 % for 5 min" fires 5 min after the fault
//    starts, not 10);
//  - slow path, where traffic is thin: over an evidence window (1h, 6h) at least
//    errorRate.minFailures.slow failures and the Wilson lower bound of the ratio above the level.
// One or two unlucky deletions prove neither; every deletion failing for an hour at night does.
local recording = import '../recording.libsonnet';
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local num = l.num,
  local pct = l.pct,
  local audit = l.audit,
  local uid = l.uid,
  local alert = l.alert,
  local errWindow = l.errWindow,
  local rec = recording(config),
  local er = config.errorRate,
  local dedup(expr) = u.dedup(config, expr),

  // "At least n events" over a count that rate() extrapolates: half an event of slack.
  local atLeast(n) = num(n - 0.5),

  local evidenceWindows =
    assert std.all([std.member(rec.windows, w) && w != '5m' for w in er.evidenceWindows])
           : 'errorRate.evidenceWindows must be recorded windows other than 5m';
    er.evidenceWindows,

  // The error ratio is above `t` and the deletions seen prove it: the fast path, or - unless the
  // last 5 minutes hold enough deletions to decide by themselves (as many as the fast path needs
  // to see minFailures.fast failures at the level) and are below the level - the significance or
  // majority path over an evidence window, or the hysteresis of an already firing level. So the
  // long windows speak only where traffic is thin, and a fixed fault at high traffic resolves
  // with its 5m window instead of when the 6h window has drained. The value is the ratio over
  // the window that proves it (the shortest first).
  local confirm(w) =
    local s = er.confirmWindows[w];
    assert std.member(rec.windows, s) : 'errorRate.confirmWindows must be recorded windows';
    s,
  local proven(t, name, severity) =
    local count(w) = rec.count('deletion:deletion_failures:rate' + w, w);
    local hw = er.hysteresisWindow;
    assert std.member(rec.windows, hw) : 'errorRate.hysteresisWindow must be a recorded window';
    local fast = |||
      (
        deletion:deletion_error_ratio:rate%(w)s > %(t)s
        and on () %(f)s >= %(min)s
      )
    ||| % { w: errWindow, t: num(t), f: count(errWindow), min: atLeast(er.minFailures.fast) };
    local slow = std.flattenArrays([
      [
        |||
          (
            deletion:deletion_error_ratio:rate%(w)s
            and on () deletion:deletion_error_ratio:wilson_lower_rate%(w)s > %(t)s
            and on () %(f)s >= %(min)s
            unless on () (deletion:deletion_requests:rate%(s)s > 0 and on () deletion:deletion_error_ratio:rate%(s)s <= %(t)s)
          )
        ||| % { w: w, s: confirm(w), t: num(t), f: count(w), min: atLeast(er.minFailures.significant) },
        |||
          (
            deletion:deletion_error_ratio:rate%(w)s > %(maj)s
            and on () %(f)s >= %(min)s
            unless on () (deletion:deletion_requests:rate%(s)s > 0 and on () deletion:deletion_error_ratio:rate%(s)s <= %(t)s)
          )
        ||| % { w: w, s: confirm(w), t: num(t), maj: num(std.max(t, er.majorityRatio)), f: count(w), min: atLeast(er.minFailures.majority) },
      ]
      for w in evidenceWindows
    ]) + [
      |||
        (
          deletion:deletion_error_ratio:rate%(w)s > %(t)s
          and on () %(f)s >= %(min)s
          and on () ALERTS{alertname="%(name)s", severity="%(sev)s", service="%(svc)s", alertstate="firing"}
        )
      ||| % { w: hw, t: num(t), f: count(hw), min: atLeast(er.minFailures.majority), name: name, sev: severity, svc: config.serviceName },
    ];
    fast + 'or on ()\n(\n(\n' + std.join('or on ()\n', slow) + |||
      )
      unless on () (
        %(n5)s >= %(decides)s
        and on () deletion:deletion_error_ratio:rate%(ew)s <= %(t)s
      )
      )
    ||| % {
      t: num(t),
      ew: errWindow,
      n5: rec.count('deletion:deletion_requests:rate' + errWindow, errWindow),
      decides: atLeast(er.minFailures.fast / t),
    },
  proven:: proven,

  // `for` = the spec's duration minus the window the ratio already spans.
  local forAfterWindow(duration) =
    local f = u.toSeconds(duration) - u.toSeconds(errWindow);
    assert f >= 0 : 'an error-rate duration is shorter than errorRateWindow';
    f,

  local keepFiring = { keep_firing_for: d(er.keepFiringFor) },

  local errorRateHigh(severity) = alert(
    'DeletionErrorRateHigh',
    severity,
    'availability',
    'audit',
    |||
      (
      %(p)s)
      unless on () deletion:post_deploy:active
    ||| % { p: proven(er[severity], 'DeletionErrorRateHigh', severity) },
    forAfterWindow(er.duration[severity]),
    'Deletion error rate is elevated.',
    'The DELETE /api/users/{id} error ratio is {{ $value | humanizePercentage }} (' + severity + ' above '
    + pct(er[severity]) + ' for ' + d(er.duration[severity]) + ').',
    uid.postDeploy,
  ) + keepFiring,


  local postDeploy(severity, threshold, duration) = alert(
    'DeletionErrorRatePostDeploy',
    severity,
    'availability',
    'audit',
    |||
      (
      %(p)s)
      and on () deletion:post_deploy:active
    ||| % { p: proven(threshold, 'DeletionErrorRatePostDeploy', severity) },
    forAfterWindow(duration),
    'Deletion error rate is elevated after a deploy.',
    'Within ' + d(config.postDeploy.window) + ' of a deploy the DELETE /api/users/{id} error ratio is '
    + '{{ $value | humanizePercentage }} (' + severity + ' above ' + pct(threshold) + ' for ' + d(duration) + ').',
    uid.postDeploy,
  ) + keepFiring,


  local failuresPerHour(name, errorType, cfg, category, summary) = alert(
    name,
    'warning',
    category,
    'audit',
    'round(sum(%s)) > %s'
    % [dedup('increase(deletion_failures_total{%s,error_type="%s"}[%s])' % [audit, errorType, d(cfg.window)]), num(cfg.warning)],
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
