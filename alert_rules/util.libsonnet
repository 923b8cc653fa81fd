// Helpers shared by the recording and alerting rules.
//
// Every duration that reaches the rendered YAML (for:, range windows, offsets, subquery steps,
// group intervals, age thresholds) goes through `duration`/`seconds` below, which divide by
// config.timeCompression. With the production factor 1 a duration written as a string is
// rendered exactly as written, so compression can never change production output.
{
  local units = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 },

  // '1h30m' -> 5400; numbers are already seconds.
  toSeconds(d)::
    if std.isNumber(d) then d
    else
      local flush(acc) =
        if acc.num == '' then acc
        else
          assert std.objectHas(units, acc.unit) : 'bad duration unit in ' + d;
          acc { total: acc.total + std.parseInt(acc.num) * units[acc.unit], num: '', unit: '' };
      local step(acc, c) =
        if std.member('0123456789', c) then
          (if acc.unit != '' then flush(acc) else acc) { num+: c }
        else acc { unit+: c };
      flush(std.foldl(step, std.stringChars(d), { total: 0, num: '', unit: '' })).total,

  // 5400 -> '1h30m', 2.5 -> '2s500ms' (Prometheus accepts compound durations).
  format(seconds)::
    local ms = std.floor(seconds * 1000 + 0.5);
    local parts = [
      { n: std.floor(ms / 86400000), u: 'd' },
      { n: std.floor(ms % 86400000 / 3600000), u: 'h' },
      { n: std.floor(ms % 3600000 / 60000), u: 'm' },
      { n: std.floor(ms % 60000 / 1000), u: 's' },
      { n: ms % 1000, u: 'ms' },
    ];
    local s = std.join('', [std.toString(p.n) + p.u for p in parts if p.n > 0]);
    if s == '' then '0s' else s,

  // A duration (string or seconds) as seconds after time compression: for numeric thresholds
  // such as "last poll older than 300 s".
  seconds(config, d):: self.toSeconds(d) / config.timeCompression,

  // A duration (string or seconds) as a Prometheus duration string after time compression.
  duration(config, d)::
    if config.timeCompression == 1 && std.isString(d) then d
    else self.format(self.seconds(config, d)),

  // Rare-endpoint guard for a ratio measured over `window`: the request rate (per second) the
  // window must reach, max(minRequestRate, minRequests / window), window after compression so
  // that the guard still means "this many requests in the window".
  minRate(config, window, minRequests)::
    std.max(config.minRequestRate * config.timeCompression, minRequests / self.seconds(config, window)),

  // Collapse the replicas of one exporter (config.replicaLabels) in an instant-vector expression
  // such as a rate() of a raw exporter series, before any sum: replicas serve identical values.
  dedup(config, expr):: 'max without (%s) (%s)' % [std.join(', ', config.replicaLabels), expr],
}
