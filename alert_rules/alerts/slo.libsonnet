// SLO: multi-window multi-burn-rate alerts on the error budget.
function(config) {
  local recording = import '../recording.libsonnet',
  local l = (import 'lib.libsonnet')(config),
  local num = l.num,
  local pct = l.pct,
  local audit = l.audit,
  local uid = l.uid,
  local alert = l.alert,
  local guard = l.guard,
  local rec = recording(config),

  local burnRate(br) =
    assert std.member(recording(config).windows, br.long) && std.member(recording(config).windows, br.short)
           : 'slo.burnRates windows must be recorded windows';
    local threshold = br.factor * (1 - config.slo.target);
    alert(
      'DeletionErrorBudgetBurn',
      br.severity,
      'slo',
      'audit',
      // Besides the request guard, the long window's failures must prove the burn as the
      // error-rate ladder's do (errorRate.minFailures): at least `fast` of them, or `significant`
      // and the Wilson lower bound above the level, or `majority` and most deletions failing
      // (two failures out of twelve deletions at night read as 16 % and prove nothing).
      |||
        deletion:deletion_error_ratio:rate%(long)s > %(t)s
        and on () deletion:deletion_error_ratio:rate%(short)s > %(t)s
        and on () %(g)s
        and on () (
          %(f)s >= %(fast)s
          or on () (
            deletion:deletion_error_ratio:wilson_lower_rate%(long)s > %(t)s
            and on () %(f)s >= %(sig)s
          )
          or on () (
            deletion:deletion_error_ratio:rate%(long)s > %(maj)s
            and on () %(f)s >= %(majn)s
          )
        )
      ||| % {
        long: br.long,
        short: br.short,
        t: num(threshold),
        g: guard(br.long),
        f: rec.count('deletion:deletion_failures:rate' + br.long, br.long),
        fast: num(config.errorRate.minFailures.fast - 0.5),
        sig: num(config.errorRate.minFailures.significant - 0.5),
        maj: num(std.max(threshold, config.errorRate.majorityRatio)),
        majn: num(config.errorRate.minFailures.majority - 0.5),
      },
      br['for'],
      'Deletion error budget is burning too fast.',
      'The error ratio is {{ $value | humanizePercentage }} over ' + br.long + ' and above '
      + pct(threshold) + ' over ' + br.short + ' too: ' + num(br.factor) + 'x the rate that spends the '
      + config.slo.period + ' budget of the ' + pct(config.slo.target) + ' success target.',
      uid.executive,
      { long_window: br.long, short_window: br.short },
    ),


  group: {
    name: 'deletion-alerts-slo',
    rules: [burnRate(br) for br in config.slo.burnRates],
  },
}
