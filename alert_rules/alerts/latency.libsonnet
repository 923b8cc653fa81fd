// Latency: the p95 ladder and the average target.
//
// Every p95 level is a histogram bucket boundary, so "p95 over W above T" is exactly "more than
// 5 % of the deletions in W slower than T". A level fires when the slow deletions prove it, as
// the error ratio does (availability.libsonnet): fast path, the 5m p95 above T with at least
// latency.minSlow deletions slower than T in the window; slow path, over an evidence window at
// least latency.minSlowEvidence slow deletions and the Wilson lower bound of their share above
// 5 %. One 30 s timeout among 15 deletions reads as a p95 of 30 s and proves nothing.
local recording = import '../recording.libsonnet';
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local num = l.num,
  local uid = l.uid,
  local alert = l.alert,
  local latWindow = l.latWindow,
  local rec = recording(config),
  local lat = config.latency,
  local atLeast(n) = num(n - 0.5),
  local quantile = 0.95,

  local slow(w, t) = 'sum(deletion:deletion_slow_requests:rate%s{le="%s"})' % [w, num(t)],

  local proven(t, severity) =
    std.join('or on ()\n', [
      |||
        (
          deletion:deletion_duration_seconds:p95_rate%(w)s > %(t)s
          and on () %(slow)s >= %(min)s
        )
      ||| % { w: latWindow, t: num(t), slow: rec.count(slow(latWindow, t), latWindow), min: atLeast(lat.minSlow) },
    ] + [
      |||
        (
          deletion:deletion_duration_seconds:p95_rate%(w)s
          and on () %(lower)s > %(share)s
          and on () %(slow)s >= %(min)s
          unless on () deletion:deletion_duration_seconds:p95_rate%(s)s <= %(t)s
        )
      ||| % {
        w: w,
        s: lat.confirmWindows[w],
        t: num(t),
        lower: std.rstripChars(rec.wilsonLower(rec.count(slow(w, t), w), rec.count('deletion:deletion_duration_observations:rate' + w, w), config.errorRate.significanceZ), '\n'),
        share: num(1 - quantile),
        slow: rec.count(slow(w, t), w),
        min: atLeast(lat.minSlowEvidence),
      }
      for w in lat.evidenceWindows
    ] + [
      |||
        (
          deletion:deletion_duration_seconds:p95_rate%(w)s > %(t)s
          and on () %(slow)s >= %(min)s
          and on () ALERTS{alertname="DeletionLatencyP95High", severity="%(sev)s", service="%(svc)s", alertstate="firing"}
        )
      ||| % {
        w: lat.hysteresisWindow,
        t: num(t),
        slow: rec.count(slow(lat.hysteresisWindow, t), lat.hysteresisWindow),
        min: atLeast(lat.minSlowEvidence),
        sev: severity,
        svc: config.serviceName,
      },
    ]),

  local forAfterWindow(duration) =
    local f = u.toSeconds(duration) - u.toSeconds(latWindow);
    assert f >= 0 : 'a latency duration is shorter than latency.window';
    f,

  local latencyP95(severity) = alert(
    'DeletionLatencyP95High',
    severity,
    'latency',
    'audit',
    proven(lat[severity], severity),
    forAfterWindow(lat.duration[severity]),
    'Deletion p95 latency is high.',
    'The p95 duration of DELETE /api/users/{id} is {{ $value | humanizeDuration }} (' + severity + ' above '
    + num(lat[severity]) + 's for ' + d(lat.duration[severity]) + ').',
    uid.postDeploy,
  ) + { keep_firing_for: d(lat.keepFiringFor) },


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
          and on () %(n)s >= %(min)s
        ||| % {
          w: latWindow,
          t: num(lat.averageTarget),
          n: rec.count('deletion:deletion_requests:rate' + latWindow, latWindow),
          min: atLeast(lat.minRequestsPerWindow),
        },
        lat.averageFor,
        'Deletion average latency is above target.',
        'The average duration of DELETE /api/users/{id} over ' + latWindow
        + ' is {{ $value | humanizeDuration }} (target below ' + num(lat.averageTarget) + 's).',
        uid.postDeploy,
      ),
    ],
  },
}
