// Data integrity: orphans, other violations, violation ladder, violations left unresolved,
// forbidden deletions, completeness audit. Raw exporter series are collapsed across replicas
// (util.dedup, config.replicaLabels) before they are summed: two integrity exporters on one
// database report the same violations, which must not count twice.
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local dedup(expr) = u.dedup(config, expr),
  local orphanMatcher = 'category=~"%s"' % std.join('|', config.integrity.orphanCategories),
  local otherMatcher = 'category!~"%s"' % std.join('|', config.integrity.orphanCategories),
  // Violations per check, one figure however many integrity exporters report it.
  local perCheck = 'sum by (check) (%s)' % dedup('deletion_integrity_violations{%s}' % config.integrityExporterSelector),
  local num = l.num,
  local audit = l.audit,
  local integ = l.integ,
  local uid = l.uid,
  local alert = l.alert,

  local integrityViolations(severity) = alert(
    'DeletionIntegrityViolations',
    severity,
    'integrity',
    'integrity',
    'deletion:deletion_integrity_violations:sum > %s' % num(config.integrity[severity]),
    config.integrity['for'],
    'Data integrity violations after deletions.',
    'The integrity checks report {{ $value }} violations in total (' + severity + ' above '
    + num(config.integrity[severity]) + ').',
    uid.integrity,
  ),


  group: {
    name: 'deletion-alerts-integrity',
    rules: [
      alert(
        'DeletionOrphanedRecords',
        'warning',
        'integrity',
        'integrity',
        'sum by (check) (%s) > %s'
        % [dedup('deletion_integrity_violations{%s,%s}' % [integ, orphanMatcher]), num(config.integrity.orphanTolerance)],
        config.integrity['for'],
        'Deleted users left orphaned records behind.',
        'Integrity check {{ $labels.check }} finds {{ $value }} orphaned records (tolerance '
        + num(config.integrity.orphanTolerance) + ').',
        uid.integrity,
      ),
      alert(
        'DeletionIntegrityViolationFound',
        'warning',
        'integrity',
        'integrity',
        'sum by (check, category) (%s) > %s'
        % [dedup('deletion_integrity_violations{%s,%s}' % [integ, otherMatcher]), num(config.integrity.violationTolerance)],
        config.integrity['for'],
        'An integrity check finds violations after deletions.',
        'Integrity check {{ $labels.check }} finds {{ $value }} violations of category {{ $labels.category }}'
        + ' (tolerance ' + num(config.integrity.violationTolerance) + ').',
        uid.integrity,
      ),
      alert(
        'DeletionIntegrityViolationUnresolved',
        'warning',
        'integrity',
        'integrity',
        // Reported 4 h ago and never 0 since: gaps (an exporter or Prometheus restart) are no
        // resolution, so this needs no `for` (whose clock a single missing scrape would reset).
        |||
          min_over_time(%(c)s[%(w)s:%(step)s]) > 0
          and
          %(old)s > 0
        ||| % {
          c: perCheck,
          w: d(config.integrity.resolutionTarget),
          step: d(config.evaluationInterval),
          old: 'sum by (check) (%s)' % dedup('deletion_integrity_violations{%s} offset %s'
                                             % [integ, d(config.integrity.resolutionTarget)]),
        },
        0,
        'Integrity violations remain unresolved past the resolution target.',
        'Integrity check {{ $labels.check }} has reported violations (now {{ $value }}) for at least '
        + d(config.integrity.resolutionTarget) + ' without reaching 0: the resolution target is missed.',
        uid.integrity,
      ),
    ] + [integrityViolations(s) for s in ['warning', 'critical']] + [
      alert(
        'DeletionForbiddenDeletion',
        'critical',
        'security',
        'audit',
        'sum by (kind) (%s) > 0'
        % dedup('increase(deletion_forbidden_successes_total{%s}[%s])' % [audit, d(config.integrity.forbiddenWindow)]),
        0,
        'A deletion the business rules forbid succeeded.',
        '{{ $value | printf "%.0f" }} forbidden deletions of kind {{ $labels.kind }} succeeded in the last '
        + config.integrity.forbiddenWindow + ' (self-deletion or SUPER_ADMIN target).',
        uid.integrity,
      ),
      alert(
        'DeletionCompletenessAuditFailed',
        'critical',
        'integrity',
        'integrity',
        'sum(%s) > 0'
        % dedup('increase(deletion_completeness_failures_total{%s}[%s])' % [integ, d(config.integrity.completenessWindow)]),
        0,
        'A deleted user was not completely removed.',
        'The completeness audit found {{ $value | printf "%.0f" }} incompletely deleted users in the last '
        + config.integrity.completenessWindow + '.',
        uid.integrity,
      ),
    ],
  },
}
