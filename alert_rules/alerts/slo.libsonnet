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

  local burnRate(br) =
    assert std.member(recording(config).windows, br.long) && std.member(recording(config).windows, br.short)
           : 'slo.burnRates windows must be recorded windows';
    local threshold = br.factor * (1 - config.slo.target);
    alert(
      'DeletionErrorBudgetBurn',
      br.severity,
      'slo',
      'audit',
      |||
        deletion:deletion_error_ratio:rate%(long)s > %(t)s
        and on () deletion:deletion_error_ratio:rate%(short)s > %(t)s
        and on () %(g)s
      ||| % { long: br.long, short: br.short, t: num(threshold), g: guard(br.long) },
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
