// Alerting rules: every alert condition of the spec (see docs/alerting.md for the catalogue and
// the reasoning behind each threshold). One file per alert group under alerts/, helpers in
// alerts/lib.libsonnet; every number comes from src/deletion_monitor/data/config.libsonnet.
local recording = import 'recording.libsonnet';
local u = import 'util.libsonnet';

function(config) {
  local d(x) = u.duration(config, x),

  // Sections of the one alerting group, in evaluation order (escalation last: it reads the
  // ALERTS series the sections above wrote in this same evaluation).
  local sections = [
    (import 'alerts/availability.libsonnet')(config).group,
    (import 'alerts/latency.libsonnet')(config).group,
    (import 'alerts/resources.libsonnet')(config).group,
    (import 'alerts/integrity.libsonnet')(config).group,
    (import 'alerts/slo.libsonnet')(config).group,
    (import 'alerts/anomaly.libsonnet')(config).group,
    (import 'alerts/meta.libsonnet')(config).group,
    (import 'alerts/monitoring_ha.libsonnet')(config).group,
    (import 'alerts/performance.libsonnet')(config).group,
    (import 'alerts/escalation.libsonnet')(config).group,
  ],

  // One group: its rules run in sequence, so each alert sees the records (and each escalation
  // the ALERTS) of the same evaluation. Separate groups run in no defined order, which would
  // make every `for` boundary one interval uncertain.
  groups: [
    {
      name: 'deletion-alerts',
      interval: d(config.evaluationInterval),
      rules: recording(config).alerting + std.flattenArrays([s.rules for s in sections]),
    },
  ],
}
