// The Alertmanager configuration of deletion-monitoring: routing tree, receivers, inhibition.
//
// Rendered by `python -m deletion_monitor_tools.generate` (tools/deletion_monitor_tools/render_alertmanager.py)
// into alertmanager/alertmanager.yml. Object keys starting with '#' are comments: the renderer
// writes them as YAML comments above the key they name and drops them from the config, so the
// reason for every group_by/group_wait/group_interval/repeat_interval travels into the YAML.
//
// Secrets never appear here: Alertmanager 0.25 does not expand environment variables, so every
// secret is a *_file path under alertmanager.secretsDir (src/deletion_monitor/data/config.libsonnet), read at send
// time.
// docs/alertmanager.md draws the tree and explains how to provide each secret.
function(config=(import '../src/deletion_monitor/data/config.libsonnet')._config)
  local am = config.alertmanager;
  local service = config.serviceName;

  // Durations: seconds -> '30s' / '5m' / '4h'. Route timings are divided by timeCompression
  // (1 in production; the demo compresses time), except the daily digest, which is wall-clock.
  local fmt(s) =
    if s == 0 then '0s'
    else if s % 3600 == 0 then '%dh' % (s / 3600)
    else if s % 60 == 0 then '%dm' % (s / 60)
    else '%ds' % s;
  local d(s) = if s == 0 then '0s' else fmt(std.max(1, std.floor(s / config.timeCompression)));

  local secret(name) = am.secretsDir + '/' + am.secretFiles[name];

  // --- The daily digest window ------------------------------------------------------------------
  local startParts = std.split(am.digest.start, ':');
  local startMinute = std.parseInt(startParts[0]) * 60 + std.parseInt(startParts[1]);
  local window = am.digest.windowMinutes;
  local endMinute = startMinute + window;
  local hhmm(m) = '%02d:%02d' % [std.floor(m / 60), m % 60];
  // Re-send an unchanged digest after 20 h: longer than the window (never twice in one
  // window), shorter than the shortest gap between two windows (24 h - 1 h of a DST change -
  // the window), so the next day's single flush always finds the repeat interval elapsed.
  local digestRepeat = 20 * 3600;
  assert std.length(startParts) == 2 : 'alertmanager.digest.start: expected HH:MM, got ' + am.digest.start;
  assert window >= 1 && endMinute <= 24 * 60 : 'alertmanager.digest: the window must end by 24:00';
  assert digestRepeat < 24 * 3600 - 3600 - window * 60 : 'alertmanager.digest: window too long';

  local alertnames(names) = std.join('|', names);
  local auditDown = ['DeletionAuditExporterDown', 'DeletionAuditDatabaseDown'];
  local integrityDown = ['DeletionIntegrityExporterDown', 'DeletionIntegrityDatabaseDown'];

  // --- Receivers -----------------------------------------------------------------------------
  local slack(channel, fileKey, unrouted=false) = {
    api_url_file: secret(fileKey),
    channel: channel,
    send_resolved: true,
    title: if unrouted then '{{ template "deletion.slack.unrouted.title" . }}'
    else '{{ template "deletion.slack.title" . }}',
    title_link: '{{ template "deletion.dashboard_url" . }}',
    text: '{{ template "deletion.slack.text" . }}',
    color: '{{ template "deletion.slack.color" . }}',
    // The group the message belongs to (incident, level): one thread per incident and route.
    footer: '{{ template "deletion.slack.footer" . }}',
  };
  local pagerduty(fileKey) = {
    routing_key_file: secret(fileKey),
    send_resolved: true,
    // PagerDuty's dedup_key is Alertmanager's hash of the group key (route + group labels;
    // 0.25 does not let a config set it). The PagerDuty routes group by (service, incident), so
    // the key is stable per service, incident and escalation level: every later alert of the
    // incident updates the same PagerDuty incident, the group's resolve closes it.
    severity: '{{ template "deletion.pagerduty.severity" . }}',
    description: '{{ template "deletion.pagerduty.description" . }}',
    client: 'Alertmanager (deletion-monitoring)',
    component: '{{ .CommonLabels.incident }}',
    group: '{{ .CommonLabels.service }}',
    details: {
      incident: '{{ .CommonLabels.incident }}',
      alertname: '{{ .CommonLabels.alertname }}',
      service: '{{ .CommonLabels.service }}',
      severity: '{{ .CommonLabels.severity }}',
      escalation: '{{ .CommonLabels.escalation }}',
      summary: '{{ .CommonAnnotations.summary }}',
      description: '{{ .CommonAnnotations.description }}',
      runbook_url: '{{ template "deletion.runbook_url" . }}',
      dashboard_url: '{{ template "deletion.dashboard_url" . }}',
      firing: '{{ template "deletion.text.list" .Alerts.Firing }}',
      num_firing: '{{ .Alerts.Firing | len }}',
    },
    links: [
      { href: '{{ template "deletion.runbook_url" . }}', text: 'Runbook' },
      { href: '{{ template "deletion.dashboard_url" . }}', text: 'Dashboard' },
    ],
  };

  {
    global: {
      // Prometheus re-sends firing alerts every minute with an endsAt; this only matters for
      // alerts posted without one (tests, amtool): they resolve after 5 min of silence.
      resolve_timeout: '5m',
      smtp_smarthost: am.email.smarthost,
      smtp_from: am.email.from,
      smtp_auth_username: am.email.authUsername,
      smtp_auth_password_file: secret('smtpPassword'),
      smtp_require_tls: am.email.requireTls,
      pagerduty_url: am.pagerduty.url,
    },

    // Relative to this file's directory: alertmanager/templates/ in the repo, and
    // /etc/alertmanager/templates/ next to /etc/alertmanager/alertmanager.yml when deployed.
    templates: ['templates/*.tmpl'],

    time_intervals: [
      {
        name: 'daily-digest',
        time_intervals: [{
          times: [{ start_time: am.digest.start, end_time: hhmm(endMinute) }],
          location: am.digest.location,
        }],
      },
    ],

    inhibit_rules: [
      {
        '#': 'A critical alert silences the warning and info levels of the same alert and service'
             + ' (DeletionErrorRateHigh critical hides DeletionErrorRateHigh warning). The target'
             + ' never matches the source, so no alert inhibits itself.',
        source_matchers: ['severity="critical"'],
        target_matchers: ['severity=~"warning|info"'],
        equal: ['alertname', 'service'],
      },
      {
        '#': 'Likewise a warning silences the info level of the same alert and service.',
        source_matchers: ['severity="warning"'],
        target_matchers: ['severity="info"'],
        equal: ['alertname', 'service'],
      },
      {
        '#': 'The audit exporter or its database being down explains every symptom computed from'
             + ' audit data (stale data, missing rates): page for the cause only. The causes are'
             + ' excluded from the targets, so a cause never silences itself or the other cause.'
             + ' Escalations carry no source (they are per incident), so a cause never silences'
             + ' the escalation of its own (monitoring) incident.',
        source_matchers: ['alertname=~"%s"' % alertnames(auditDown)],
        target_matchers: [
          'source="audit"',
          'alertname!~"%s"' % alertnames(auditDown),
        ],
        equal: ['service'],
      },
      {
        '#': 'The same for the integrity exporter and its database.',
        source_matchers: ['alertname=~"%s"' % alertnames(integrityDown)],
        target_matchers: [
          'source="integrity"',
          'alertname!~"%s"' % alertnames(integrityDown),
        ],
        equal: ['service'],
      },
    ],

    receivers: [
      { name: 'default', slack_configs: [slack(am.slack.opsChannel, 'slackOps', unrouted=true)] },
      { name: 'heartbeat', webhook_configs: [{
        url: am.heartbeat.url,
        // The dead man's switch only needs "still alive" pings; a resolve would mean nothing.
        send_resolved: false,
        http_config: { authorization: { type: 'Bearer', credentials_file: secret('heartbeatToken') } },
      }] },
      { name: 'pagerduty-oncall', pagerduty_configs: [pagerduty('pagerdutyOncall')] },
      { name: 'pagerduty-senior', pagerduty_configs: [pagerduty('pagerdutySenior')] },
      { name: 'pagerduty-manager', pagerduty_configs: [pagerduty('pagerdutyManager')] },
      { name: 'slack-ops', slack_configs: [slack(am.slack.opsChannel, 'slackOps')] },
      { name: 'slack-security', slack_configs: [slack(am.slack.securityChannel, 'slackSecurity')] },
      { name: 'email-digest', email_configs: [{
        to: am.email.to,
        // A digest lists what is firing at digest time; "resolved" mails would double the noise.
        send_resolved: false,
        headers: { Subject: '{{ template "deletion.email.subject" . }}' },
        html: '{{ template "deletion.email.html" . }}',
        text: '{{ template "deletion.email.text" . }}',
      }] },
    ],

    route: {
      receiver: 'default',
      '#group_by': 'One notification per problem: all series of one alert for one service'
                   + ' (instances, user types, burn-rate windows) travel together.',
      group_by: ['alertname', 'service'],
      '#group_wait': 'Collect the series of a new group that Prometheus evaluates in the same'
                     + ' cycle and give an inhibiting alert (critical, exporter down) time to'
                     + ' arrive before its targets are sent.',
      group_wait: d(30),
      '#group_interval': 'New series joining a group that was already notified wait at most'
                         + ' this long: batches updates without hiding them.',
      group_interval: d(5 * 60),
      '#repeat_interval': 'Unrouted alerts (the default receiver) remind twice a working day.',
      repeat_interval: d(4 * 3600),
      routes: [
        {
          '#': 'Watchdog first and alone: it always fires, must reach only the heartbeat'
               + " receiver, and the dead man's switch pages when the pings stop.",
          matchers: ['alertname="Watchdog"'],
          receiver: 'heartbeat',
          '#group_by': 'There is one Watchdog per Prometheus; one group for all of them.',
          group_by: ['alertname'],
          '#group_wait': 'A heartbeat has nothing to wait for.',
          group_wait: d(0),
          '#group_interval': 'A repeat is only sent on a flush, at the first tick at which more'
                             + ' than repeat_interval has passed since the previous send finished'
                             + ' (measured on Alertmanager 0.25: 1 s ticks with a 1 s repeat ping'
                             + ' every 2 s). Ticks every 10 s let the repeat land on the minute.',
          group_interval: d(10),
          '#repeat_interval': 'A ping every minute: 55 s puts the repeat on the 60 s tick (1m'
                              + " would ping every 70 s). The dead man's switch alarms after a"
                              + ' few missed minutes.',
          repeat_interval: d(55),
          continue: false,
        },
        {
          '#': 'Escalation alerts (rules: an incident with a critical alert unresolved for 15 / 30'
               + ' min; one escalation per incident) page the next level. continue: a security'
               + ' escalation also reaches the security channel, and every escalation gets a Slack'
               + ' copy below.',
          matchers: ['escalation="senior"'],
          receiver: 'pagerduty-senior',
          '#group_by': 'One PagerDuty incident (dedup key) per incident and service.',
          group_by: ['service', 'incident'],
          '#group_wait': 'The rule already waited 15 min; 10 s only gathers its series.',
          group_wait: d(10),
          '#group_interval': 'Updates to an open incident are not urgent.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'Re-trigger hourly: PagerDuty merges repeats into the open incident'
                              + ' (same dedup key) and reopens one that was resolved by hand while'
                              + ' the alert still fires.',
          repeat_interval: d(3600),
          continue: true,
        },
        {
          matchers: ['escalation="manager"'],
          receiver: 'pagerduty-manager',
          '#group_by': 'One PagerDuty incident (dedup key) per incident and service.',
          group_by: ['service', 'incident'],
          '#group_wait': 'The rule already waited 30 min; 10 s only gathers its series.',
          group_wait: d(10),
          '#group_interval': 'Updates to an open incident are not urgent.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'Re-trigger hourly, as for the senior level.',
          repeat_interval: d(3600),
          continue: true,
        },
        {
          '#': 'The security incident (authorization failures, forbidden deletions, the auth'
               + ' probe, and its escalations) goes to the security channel and, through continue,'
               + ' also follows its severity route (a critical one pages on-call).',
          matchers: ['incident="security"'],
          receiver: 'slack-security',
          '#group_by': 'One message stream per incident and service.',
          group_by: ['service', 'incident'],
          '#group_wait': 'Security findings are urgent: 10 s gathers the series of one evaluation.',
          group_wait: d(10),
          '#group_interval': 'New series of an open problem within 5 min.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'Remind hourly while a security problem persists.',
          repeat_interval: d(3600),
          continue: true,
        },
        {
          '#': 'The Slack copy of an escalation, then stop: on-call was already paged by the'
               + ' original critical alert and must not be paged again by its escalation.',
          matchers: ['escalation=~"senior|manager"'],
          receiver: 'slack-ops',
          '#group_by': 'One message stream per incident and level (the alert name is the level).',
          group_by: ['alertname', 'service', 'incident'],
          '#group_wait': 'As the escalation page.',
          group_wait: d(10),
          '#group_interval': 'As the escalation page.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'The page carries the urgency; the channel needs a reminder only'
                              + ' every 4 h.',
          repeat_interval: d(4 * 3600),
        },
        {
          '#': 'Critical: page the on-call engineer, and continue to the Slack copy below.',
          matchers: ['severity="critical"'],
          receiver: 'pagerduty-oncall',
          '#group_by': 'One PagerDuty incident per incident and service: the error ratio, the'
                       + ' post-deploy ladder and the burn rates of one fault are one page (one'
                       + ' dedup key); alerts joining later update it.',
          group_by: ['service', 'incident'],
          '#group_wait': 'Page fast (R26: immediate); 10 s gathers the series of one evaluation'
                         + ' and lets an exporter-down inhibitor arrive first.',
          group_wait: d(10),
          '#group_interval': 'Updates to an open incident within 5 min.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'Re-trigger hourly: merged into the open incident by dedup key,'
                              + ' reopens one closed by hand while the alert still fires.',
          repeat_interval: d(3600),
          continue: true,
        },
        {
          '#': 'The Slack copy of every critical alert, so the team sees what on-call sees.',
          matchers: ['severity="critical"'],
          receiver: 'slack-ops',
          '#group_by': 'As the page: one message stream per incident and service.',
          group_by: ['service', 'incident'],
          '#group_wait': 'Same moment as the page.',
          group_wait: d(10),
          '#group_interval': 'New series of an open problem within 5 min.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'PagerDuty carries the urgency; the channel is reminded every 4 h.',
          repeat_interval: d(4 * 3600),
        },
        {
          '#': 'Warning: the operations channel.',
          matchers: ['severity="warning"'],
          receiver: 'slack-ops',
          '#group_by': 'One message stream per incident and service.',
          group_by: ['service', 'incident'],
          '#group_wait': 'Not urgent: 30 s also lets the critical level of the same alert arrive'
                         + ' and inhibit it.',
          group_wait: d(30),
          '#group_interval': 'New series of an open problem within 5 min.',
          group_interval: d(5 * 60),
          '#repeat_interval': 'Remind every 4 h, about twice per working day, without spamming.',
          repeat_interval: d(4 * 3600),
        },
        {
          '#': 'Info: one email digest a day, sent only inside the daily-digest window.'
               + ' Alertmanager checks active_time_intervals only when a group flushes, and a'
               + ' group flushes every group_interval. group_interval equals the window length,'
               + ' so exactly one flush of the group falls in each window: never missed (a'
               + ' longer interval could step over the window forever), never sent twice (a'
               + ' shorter one could flush twice when a new info alert arrives in the window).'
               + " Flushes outside the window are muted and not logged, so the window's flush"
               + ' sends everything that accumulated since the last digest.',
          matchers: ['severity="info"'],
          receiver: 'email-digest',
          active_time_intervals: ['daily-digest'],
          '#group_by': 'One digest for the whole service, not one mail per alert.',
          group_by: ['service'],
          '#group_wait': 'Only matters when a group is created inside the window; outside it,'
                         + ' the first flush is muted anyway.',
          group_wait: fmt(60),
          '#group_interval': 'Equal to the window length (%d min): see above. Wall-clock, never'
                             % window + ' time-compressed.',
          group_interval: fmt(window * 60),
          '#repeat_interval': 'Re-send an unchanged digest on the next day: 20 h is longer than'
                              + ' the window and shorter than the shortest gap between two'
                              + ' windows (24 h - 1 h DST change - the window).',
          repeat_interval: fmt(digestRepeat),
        },
      ],
    },
  }
