// Data integrity: orphans, violation ladder, forbidden deletions, completeness audit.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
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
        'sum by (check) (deletion_integrity_violations{%s,category=~"%s"}) > %s'
        % [integ, std.join('|', config.integrity.orphanCategories), num(config.integrity.orphanTolerance)],
        config.integrity['for'],
        'Deleted users left orphaned records behind.',
        'Integrity check {{ $labels.check }} finds {{ $value }} orphaned records (tolerance '
        + num(config.integrity.orphanTolerance) + ').',
        uid.integrity,
      ),
    ] + [integrityViolations(s) for s in ['warning', 'critical']] + [
      alert(
        'DeletionForbiddenDeletion',
        'critical',
        'security',
        'audit',
        'sum by (kind) (increase(deletion_forbidden_successes_total{%s}[%s])) > 0'
        % [audit, d(config.integrity.forbiddenWindow)],
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
        'sum(increase(deletion_completeness_failures_total{%s}[%s])) > 0'
        % [integ, d(config.integrity.completenessWindow)],
        0,
        'A deleted user was not completely removed.',
        'The completeness audit found {{ $value | printf "%.0f" }} incompletely deleted users in the last '
        + config.integrity.completenessWindow + '.',
        uid.integrity,
      ),
    ],
  },
}
