// A prometheus-operator PrometheusRule object holding a mixin's rules: the recording groups
// (prometheusRules), then the alerting group (prometheusAlerts), unchanged. For users of the
// operator who render the mixin themselves, with their own _config:
//
//   local mixin = (import 'deletion-monitoring/mixin.libsonnet') + { _config+:: { ... } };
//   (import 'deletion-monitoring/lib/prometheusrule.libsonnet')(mixin, labels={ release: 'kps' })
//
// The operator's Prometheus picks the object up only if its ruleSelector matches `labels`
// (e.g. `release: <helm release>` for kube-prometheus-stack).
local defaultLabels = {
  'app.kubernetes.io/name': 'deletion-monitoring',
  'app.kubernetes.io/component': 'prometheus-rules',
};

// A DNS-1123 subdomain, as Kubernetes requires of an object name: at most 253 characters of
// lower-case letters, digits, '-' and '.', starting and ending with a letter or a digit.
local dns1123(name) =
  local alnum = 'abcdefghijklmnopqrstuvwxyz0123456789';
  std.length(name) > 0 && std.length(name) <= 253
  && std.all([std.member(alnum + '-.', c) for c in std.stringChars(name)])
  && std.member(alnum, name[0]) && std.member(alnum, name[std.length(name) - 1]);

function(mixin, name='deletion-monitoring', namespace=null, labels={})
  assert dns1123(name) : 'PrometheusRule name %s is not a DNS-1123 subdomain' % std.toString(name);
  {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: {
      name: name,
      labels: defaultLabels + labels,
    } + (if namespace == null then {} else { namespace: namespace }),
    spec: {
      groups: mixin.prometheusRules.groups + mixin.prometheusAlerts.groups,
    },
  }
