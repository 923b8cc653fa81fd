// The redundant monitoring itself (docs/scaling.md): two Prometheus replicas, an Alertmanager
// gossip cluster and the remote_write to the long-term store. Thresholds: config.ha.
//
// Every alert here is a warning: it says that the redundancy is gone or the long-term copy
// lags, while the remaining replica or peer still evaluates and delivers. When nothing is left
// to evaluate or deliver, no rule can fire: the Watchdog heartbeat stops and the dead man's
// switch pages.
function(config) {
  local l = (import 'lib.libsonnet')(config),
  local d = l.d,
  local sec = l.sec,
  local num = l.num,
  local pct = l.pct,
  local uid = l.uid,
  local alert = l.alert,
  local prom = config.prometheusSelector,
  local am = config.alertmanagerSelector,
  local ha = config.ha,
  local rw = ha.remoteWrite,

  group: {
    name: 'deletion-alerts-monitoring-ha',
    rules: [
      alert(
        'PrometheusReplicaDown',
        'warning',
        'meta',
        'prometheus',
        // Each replica scrapes every replica of the job: the one still running sees the other
        // fail. A replica cannot see itself down, so this is always the peer's view.
        'up{%s} == 0' % prom,
        ha.prometheusDownFor,
        'A Prometheus replica is down.',
        'Prometheus {{ $labels.instance }} is not scraped (up = {{ $value }}): the other replica'
        + ' still evaluates the rules and sends alerts, but there is no redundancy left.',
        uid.executive,
      ),
      alert(
        'AlertmanagerReplicaDown',
        'warning',
        'meta',
        'alertmanager',
        'up{%s} == 0' % am,
        ha.alertmanagerDownFor,
        'An Alertmanager of the cluster is down.',
        'Alertmanager {{ $labels.instance }} is not scraped (up = {{ $value }}): its peers'
        + ' still deliver, but there is no redundancy left.',
        uid.executive,
      ),
      alert(
        'AlertmanagerClusterSplit',
        'warning',
        'meta',
        'alertmanager',
        // A running Alertmanager that sees fewer members than there are running Alertmanagers:
        // the halves do not share their notification log, so each notifies (pages twice).
        |||
          alertmanager_cluster_members{%(am)s}
          < on (job) group_left ()
          count by (job) (up{%(am)s} == 1)
        ||| % { am: am },
        ha.clusterSplitFor,
        'The Alertmanager cluster is split.',
        'Alertmanager {{ $labels.instance }} sees {{ $value }} cluster member(s) while more'
        + ' Alertmanagers are running: the parts notify separately and every page may arrive twice.',
        uid.executive,
      ),
      alert(
        'AlertmanagerNotClustered',
        'warning',
        'meta',
        'alertmanager',
        // Started without --cluster.* (or with an empty listen address) among several targets
        // of one job: it never gossips, so it sends every notification its peers also send.
        |||
          alertmanager_cluster_enabled{%(am)s} == 0
          and on (job)
          count by (job) (up{%(am)s}) > 1
        ||| % { am: am },
        ha.clusterSplitFor,
        'An Alertmanager does not gossip with its cluster.',
        'Alertmanager {{ $labels.instance }} runs with clustering disabled'
        + ' (alertmanager_cluster_enabled = {{ $value }}) beside other Alertmanagers of job'
        + ' {{ $labels.job }}: it notifies on its own, every page may arrive twice.',
        uid.executive,
      ),
      alert(
        'PrometheusRemoteWriteFailing',
        'warning',
        'meta',
        'prometheus',
        // Retried sends (store down or answering 5xx) and failed ones (rejected, lost) over all
        // send attempts. A rate of failures without any attempt counted is +Inf: fires too.
        |||
          (
            rate(prometheus_remote_storage_samples_failed_total{%(s)s}[%(w)s])
            + rate(prometheus_remote_storage_samples_retried_total{%(s)s}[%(w)s])
          )
          / rate(prometheus_remote_storage_samples_total{%(s)s}[%(w)s])
          > %(r)s
        ||| % { s: prom, w: d(rw.window), r: num(rw.failingRatio) },
        rw.failingFor,
        'Remote write to the long-term store is failing.',
        '{{ $value | humanizePercentage }} of the samples {{ $labels.instance }} sends to'
        + ' {{ $labels.remote_name }} failed or were retried over the last ' + rw.window
        + ' (limit ' + pct(rw.failingRatio) + '): the long-term store misses data.',
        uid.executive,
      ),
      alert(
        'PrometheusRemoteWriteBehind',
        'warning',
        'meta',
        'prometheus',
        // Newest sample appended locally minus the newest one the queue has sent.
        |||
          prometheus_remote_storage_highest_timestamp_in_seconds{%(s)s}
          - ignoring (remote_name, url) group_right ()
          prometheus_remote_storage_queue_highest_sent_timestamp_seconds{%(s)s}
          > %(t)s
        ||| % { s: prom, t: num(sec(rw.maxLag)) },
        rw.behindFor,
        'Remote write to the long-term store is falling behind.',
        '{{ $labels.instance }} is {{ $value | humanizeDuration }} behind in sending to'
        + ' {{ $labels.remote_name }} (limit ' + d(rw.maxLag) + '): past the WAL (about 2 h)'
        + ' the gap is lost from the long-term store.',
        uid.executive,
      ),
    ],
  },
}
