// Escalation: reads the ALERTS series the other files wrote in this same evaluation.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local uid = l.uid,
  local alert = l.alert,

  local escalation(name, level, who, afterSeconds) = alert(
    name,
    'critical',
    null,
    null,
    |||
      label_replace(
        max without (alertstate) (
          ALERTS{alertstate="firing", severity="%(sev)s", service="%(svc)s", alertname!~"DeletionEscalation.*"}
        ),
        "escalated_alert", "$1", "alertname", "(.+)"
      )
    ||| % { sev: config.escalationSeverity, svc: config.serviceName },
    afterSeconds,
    'A critical deletion alert is unresolved; escalating.',
    '{{ $labels.escalated_alert }} has been firing for more than ' + d(afterSeconds)
    + ' without being resolved: escalated to the ' + who + '.',
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
