// Escalation, once per incident (docs/alerting.md "Incidents and grouping" and "Escalation"):
// reads the ALERTS series the other files wrote in this same evaluation.
local u = import '../util.libsonnet';

function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local uid = l.uid,
  local alert = l.alert,

  // Burn-rate pairs that keep firing long after a fix (short window above escalation.maxLag):
  // they page on-call with their incident but do not keep its escalation clock running.
  local lagging = std.set([
    br.short
    for br in config.slo.burnRates
    if u.toSeconds(br.short) > config.escalation.maxLag
  ]),

  // The critical alerts of each incident that keep its clock running, counted per incident:
  // one series per (service, incident), however many alerts and series the incident holds.
  local incidentAlerts =
    |||
      count by (service, incident) (
        ALERTS{alertstate="firing", severity="%(sev)s", service="%(svc)s", alertname!~"DeletionEscalation.*"%(lag)s}
      )
    ||| % {
      sev: config.escalationSeverity,
      svc: config.serviceName,
      lag: if lagging == [] then '' else ', short_window!~"%s"' % std.join('|', lagging),
    },

  local escalation(name, level, who, afterSeconds) = alert(
    name,
    'critical',
    null,
    null,
    incidentAlerts,
    afterSeconds,
    'A critical deletion incident is unresolved; escalating.',
    'The {{ $labels.incident }} incident has had a critical alert firing for more than '
    + d(afterSeconds) + ' without being resolved: escalated to the ' + who + '.',
    uid.postDeploy,
    { escalation: level },
  ),


  group: {
    // Reads the ALERTS series the sections above wrote in this same evaluation.
    name: 'deletion-alerts-escalation',
    rules: [
      escalation('DeletionEscalationSenior', 'senior', 'senior engineer', config.escalation.senior),
      escalation('DeletionEscalationManager', 'manager', 'manager', config.escalation.manager),
    ],
  },
}
