"""The committed Alertmanager config running in a real `prometheus-alertmanager` on 127.0.0.1.

Only the outside world is replaced: an HTTP sink stands in for Slack (the webhook URL is the
content of the Slack secret file) and for PagerDuty (the global pagerduty_url), a local aiosmtpd
server for the mail relay, and the heartbeat URL points at the same HTTP sink. The test copy of
the config differs from the committed one only in those endpoints, the secret directory (files
in tmp), and shortened timings so that a group flushes in about a second. The digest's
daily-digest time interval is replaced by an always-active one, so that info alerts are mailed
now instead of at 09:00 (the window logic itself is pinned by test_alertmanager_config.py).

Each test uses its own `service` label: groups, inhibition (equal: service) and sink records of
one test never mix with another's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from deletion_monitor.common.config import load_config
from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http
from deletion_monitor_tools.paths import REPO_ROOT

AM_YML = REPO_ROOT / "alertmanager" / "alertmanager.yml"
TEMPLATES = REPO_ROOT / "alertmanager" / "templates"
SECRETS_DIR = "/etc/alertmanager/secrets"

KEYS = {
    "pagerduty_oncall_routing_key": "oncall0000000000000000000000000a",
    "pagerduty_senior_routing_key": "senior0000000000000000000000000b",
    "pagerduty_manager_routing_key": "manager000000000000000000000000c",
    "smtp_auth_password": "smtp-password-from-file",
    "heartbeat_token": "heartbeat-token-from-file",
}
RUNBOOK = "https://runbooks.example/docs/runbooks/{}.md"
DASHBOARD = "http://grafana.example/d/deletion-post-deploy"

# config.incidents: the incident label alert() derives from the category.
INCIDENTS = load_config({})["incidents"]

# Test timings: every group flushes after 1 s, repeats after 2 s.
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "2s"}
# aiosmtpd warns on every connection that AUTH without TLS is unsafe: intended on 127.0.0.1.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
_services = itertools.count()


# --- Local stand-ins for Slack, PagerDuty, the heartbeat and the mail relay ------------------


class HttpSink:
    """Records every POST as {"path", "headers", "body"}; answers like Slack/PagerDuty do."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with sink._lock:
                    sink.records.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                # PagerDuty's Events API answers 202, Slack 200 "ok".
                status = 202 if self.path.startswith("/pagerduty") else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "success"}' if status == 202 else b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def select(self, path: str, needle: str = "") -> list[dict[str, Any]]:
        with self._lock:
            return [
                r
                for r in self.records
                if r["path"] == path and needle in json.dumps(r["body"], ensure_ascii=False)
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that requires AUTH and records the password and the messages."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.passwords: list[str] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "message": message_from_bytes(envelope.content, policy=policy.default),
                    }
                )
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            if isinstance(data, LoginPassword):
                sink.passwords.append(data.password.decode())
                return AuthResult(success=data.password.decode() == KEYS["smtp_auth_password"])
            return AuthResult(success=False)

        self.port = free_port()
        # Plain-text AUTH without STARTTLS: only acceptable because this is 127.0.0.1 (Go's
        # PLAIN auth refuses anything else), and the test copy sets smtp_require_tls: false.
        # LOGIN is excluded because aiosmtpd's LOGIN prompts ("User Name\0") are not the
        # "Username:" that real servers send and Alertmanager expects; PLAIN is what it uses.
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN"],
        )
        self.controller.start()

    def select(self, needle: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if needle in m["message"].as_string()]

    def close(self) -> None:
        self.controller.stop()


def wait_for(probe: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- The test copy of the committed config ---------------------------------------------------


def _retarget_secrets(value: Any, secrets: Path) -> Any:
    if isinstance(value, dict):
        return {k: _retarget_secrets(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_retarget_secrets(v, secrets) for v in value]
    if isinstance(value, str) and value.startswith(SECRETS_DIR + "/"):
        return str(secrets / value.removeprefix(SECRETS_DIR + "/"))
    return value


def _speed_up(route: dict[str, Any]) -> None:
    for key, value in FAST.items():
        if key in route:
            route[key] = "0s" if key == "group_wait" and route[key] == "0s" else value
    for child in route.get("routes", []):
        _speed_up(child)


def write_test_config(tmp: Path, http: HttpSink, smtp: SmtpSink) -> Path:
    """Write the patched copy of alertmanager.yml and its secret files under `tmp`."""
    secrets = tmp / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    # Written as `echo` would, with a trailing newline: Alertmanager trims the Slack URL, the
    # routing keys and the bearer token. Not the SMTP password: 0.25 sends that file verbatim, so
    # it must be written without one (docs/alertmanager.md says `printf '%s'` for every secret).
    (secrets / "slack_webhook_url").write_text(http.url("/slack") + "\n")
    for name, value in KEYS.items():
        (secrets / name).write_text(value if name == "smtp_auth_password" else value + "\n")

    cfg = _retarget_secrets(yaml.safe_load(AM_YML.read_text()), secrets)
    cfg["templates"] = [str(TEMPLATES / "*.tmpl")]
    cfg["global"].update(
        pagerduty_url=http.url("/pagerduty"),
        smtp_smarthost=f"127.0.0.1:{smtp.port}",
        smtp_require_tls=False,
    )
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = http.url("/heartbeat")
    # The digest window, always open (the only behavioural change besides the timings).
    for interval in cfg["time_intervals"]:
        if interval["name"] == "daily-digest":
            interval["time_intervals"] = [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]
    _speed_up(cfg["route"])
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Alertmanager:
    def __init__(self, config: Path, workdir: Path, cluster: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            require_binary("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=debug",
        ]
        # No cluster unless asked: the default would bind 0.0.0.0:9094.
        argv += cluster if cluster is not None else ["--cluster.listen-address="]
        self.proc = ManagedProcess(argv, workdir / "alertmanager.log")
        try:
            wait_http(self.url + "/-/ready", timeout=20)
        except TimeoutError:
            self.proc.stop()
            raise AssertionError("alertmanager did not start:\n" + self.proc.log_tail()) from None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + "/api/v2" + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def post(self, *alerts: dict[str, Any]) -> None:
        self.api("POST", "/alerts", list(alerts))

    def alerts(self, service: str) -> dict[str, dict[str, Any]]:
        """{alertname/severity: alert} of one service, as the API reports them."""
        query = urllib.parse.quote(f'service="{service}"')
        found = self.api("GET", f"/alerts?filter={query}")
        return {f"{a['labels']['alertname']}/{a['labels'].get('severity')}": a for a in found}

    def stop(self) -> None:
        self.proc.stop()


def alert(
    service: str,
    alertname: str,
    severity: str | None,
    resolved: bool = False,
    started: timedelta = timedelta(minutes=1),
    **labels: str,
) -> dict[str, Any]:
    """An alert as Prometheus posts it, active since `started` ago.

    Alertmanager flushes a new group at once when its first alert started more than group_wait
    ago (the default here, for fast tests); pass started=timedelta(0) to get the group_wait that
    lets several alerts of one post land in one notification.
    """
    now = datetime.now(UTC)
    all_labels = {"alertname": alertname, "service": service, "source": "audit"}
    all_labels.setdefault("category", "availability")
    all_labels.update(labels)
    # As alert() in the rules: the incident follows from the category unless given.
    if "category" in all_labels:
        all_labels.setdefault("incident", INCIDENTS[all_labels["category"]])
    if severity is not None:
        all_labels["severity"] = severity
    return {
        "labels": all_labels,
        "annotations": {
            "summary": f"{alertname} {severity} summary for {service}",
            "description": f"{alertname} {severity} description",
            "runbook_url": RUNBOOK.format(alertname),
            "dashboard_url": DASHBOARD,
        },
        "startsAt": (now - started).isoformat(),
        # Like Prometheus: firing alerts carry an endsAt in the near future, resolved ones now.
        "endsAt": (now if resolved else now + timedelta(hours=1)).isoformat(),
    }


def escalation(
    service: str, level: str, incident: str, resolved: bool = False, **kw: Any
) -> dict[str, Any]:
    """DeletionEscalationSenior/Manager as the rules raise it: per (service, incident), without
    category, source or the escalated alert's name."""
    esc = alert(
        service,
        f"DeletionEscalation{level.title()}",
        "critical",
        resolved=resolved,
        escalation=level,
        incident=incident,
        **kw,
    )
    for label in ("category", "source"):
        esc["labels"].pop(label)
    return esc


def dedup_key(route_matchers: str, service: str, incident: str) -> str:
    """PagerDuty dedup key Alertmanager 0.25 sends: sha256 of the group key, which is the route
    path (root `{}` / the route's matchers) and the group labels."""
    group_key = f'{{}}/{route_matchers}:{{incident="{incident}", service="{service}"}}'
    return hashlib.sha256(group_key.encode()).hexdigest()


LEVELS = ("senior", "manager")


# --- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sinks() -> Iterator[tuple[HttpSink, SmtpSink]]:
    http = HttpSink()
    try:
        smtp = SmtpSink()
    except Exception:
        http.close()
        raise
    try:
        yield http, smtp
    finally:
        smtp.close()
        http.close()


@pytest.fixture(scope="module")
def am_config(tmp_path_factory: pytest.TempPathFactory, sinks: tuple[HttpSink, SmtpSink]) -> Path:
    return write_test_config(tmp_path_factory.mktemp("am-config"), *sinks)


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory, am_config: Path) -> Iterator[Alertmanager]:
    node = Alertmanager(am_config, tmp_path_factory.mktemp("am"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def service(request: pytest.FixtureRequest) -> str:
    return f"svc-{next(_services)}-{request.node.name[5:45]}"


# --- Tests -------------------------------------------------------------------------------------


def test_critical_pages_oncall_with_the_key_from_its_file(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    am.post(alert(service, "DeletionErrorRateHigh", "critical"))

    (page, *_) = wait_for(lambda: http.select("/pagerduty", service), what="a PagerDuty event")
    body = page["body"]
    assert body["routing_key"] == KEYS["pagerduty_oncall_routing_key"]
    assert body["event_action"] == "trigger"
    assert body["dedup_key"]  # Alertmanager's group key hash: one incident per group
    payload = body["payload"]
    assert payload["severity"] == "critical"
    assert f"DeletionErrorRateHigh critical summary for {service}" in payload["summary"]
    details = payload["custom_details"]
    assert details["alertname"] == "DeletionErrorRateHigh"
    assert details["service"] == service
    assert details["runbook_url"] == RUNBOOK.format("DeletionErrorRateHigh")
    assert {"href": RUNBOOK.format("DeletionErrorRateHigh"), "text": "Runbook"} in body["links"]
    assert {"href": DASHBOARD, "text": "Dashboard"} in body["links"]

    # The Slack copy in the ops channel.
    (msg, *_) = wait_for(lambda: http.select("/slack", service), what="the Slack copy")
    assert msg["body"]["channel"] == "#ops-alerts"
    (attachment,) = msg["body"]["attachments"]
    assert attachment["title"].startswith("[FIRING:1] DeletionErrorRateHigh · critical")
    text = attachment["text"]
    for expected in (
        f"DeletionErrorRateHigh critical summary for {service}",
        "DeletionErrorRateHigh critical description",
        "*Severity:* `critical`",
        f"<{RUNBOOK.format('DeletionErrorRateHigh')}|runbook>",
        f"<{DASHBOARD}|dashboard>",
    ):
        assert expected in text
    # No other receiver: not the senior/manager services, not the security channel.
    keys = {p["body"]["routing_key"] for p in http.select("/pagerduty", service)}
    assert keys == {KEYS["pagerduty_oncall_routing_key"]}
    assert {m["body"]["channel"] for m in http.select("/slack", service)} == {"#ops-alerts"}


def test_alerts_of_one_group_arrive_in_one_message(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    # Two series of one alert of the availability incident (latency is part of it) and an alert
    # of another incident (resources), in one post: one message per incident.
    lat = {"category": "latency"}
    pool = {"category": "resources", "source": "app"}
    # Started now, so the group waits its group_wait for the second series instead of flushing
    # on the first (which is what an alert that started earlier triggers).
    fresh = timedelta(0)
    am.post(
        alert(
            service, "DeletionLatencyP95High", "warning", started=fresh, **lat, user_type="VENDOR"
        ),
        alert(
            service, "DeletionLatencyP95High", "warning", started=fresh, **lat, user_type="CLIENT"
        ),
        alert(service, "DeletionDbPoolSaturated", "warning", started=fresh, **pool),
    )
    latency = wait_for(
        lambda: http.select("/slack", "DeletionLatencyP95High · warning · " + service),
        what="the latency group",
    )
    wait_for(lambda: http.select("/slack", "DeletionDbPoolSaturated"), what="the pool group")
    first = latency[0]["body"]["attachments"][0]
    assert first["title"].startswith("[FIRING:2] DeletionLatencyP95High")
    assert "`user_type=VENDOR`" in first["text"] and "`user_type=CLIENT`" in first["text"]
    # Every message is one group: the pool alert never shares a message with the latency one.
    for record in http.select("/slack", service):
        text = json.dumps(record["body"])
        assert ("DeletionLatencyP95High" in text) != ("DeletionDbPoolSaturated" in text)


def test_critical_inhibits_warning_and_info_of_the_same_alert(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, smtp = sinks
    crit = alert(service, "DeletionErrorRateHigh", "critical")
    warn = alert(service, "DeletionErrorRateHigh", "warning")
    info = alert(service, "DeletionErrorRateHigh", "info")
    other = alert(service, "DeletionTimeoutsHigh", "warning")  # another alert: not inhibited
    # The critical first: posted in one batch, a group whose alert started long ago flushes at
    # once and could race the inhibitor's view of the critical (Prometheus' next resend would
    # catch up; a test must not depend on that race).
    am.post(crit)
    wait_for(lambda: "DeletionErrorRateHigh/critical" in am.alerts(service), what="the critical")
    am.post(warn, info, other)

    wait_for(lambda: http.select("/slack", "DeletionTimeoutsHigh"), what="the other warning")
    wait_for(lambda: http.select("/pagerduty", service), what="the critical page")
    state = am.alerts(service)
    critical_fp = state["DeletionErrorRateHigh/critical"]["fingerprint"]
    for key in ("DeletionErrorRateHigh/warning", "DeletionErrorRateHigh/info"):
        assert state[key]["status"]["state"] == "suppressed"
        assert state[key]["status"]["inhibitedBy"] == [critical_fp]
    assert state["DeletionErrorRateHigh/critical"]["status"]["state"] == "active"
    assert state["DeletionTimeoutsHigh/warning"]["status"]["state"] == "active"
    time.sleep(3)  # several flush cycles of the warning and info routes
    assert not http.select("/slack", "DeletionErrorRateHigh warning summary")
    assert not smtp.select(service)

    # Positive control: once the critical resolves, the warning is delivered.
    am.post(alert(service, "DeletionErrorRateHigh", "critical", resolved=True), warn)
    wait_for(
        lambda: http.select("/slack", "DeletionErrorRateHigh warning summary"),
        what="the warning after the critical resolved",
    )


def test_exporter_or_database_down_silences_its_symptoms_not_itself(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    # Causes first, symptoms once Alertmanager holds the causes (see the inhibition test).
    am.post(
        alert(service, "DeletionAuditExporterDown", "critical", category="meta"),
        alert(service, "DeletionAuditDatabaseDown", "critical", category="meta"),
    )
    wait_for(
        lambda: (
            {"DeletionAuditExporterDown/critical", "DeletionAuditDatabaseDown/critical"}
            <= set(am.alerts(service))
        ),
        what="the causes",
    )
    am.post(
        alert(service, "DeletionAuditDataStale", "warning", category="meta"),
        alert(service, "DeletionErrorRateHigh", "critical"),
        alert(service, "DeletionIntegrityChecksStale", "warning", source="integrity"),
    )
    wait_for(lambda: http.select("/slack", "DeletionIntegrityChecksStale"), what="integrity")
    state = am.alerts(service)
    for symptom in ("DeletionAuditDataStale/warning", "DeletionErrorRateHigh/critical"):
        assert state[symptom]["status"]["state"] == "suppressed", symptom
    # The causes page (neither inhibits the other nor itself); other sources are untouched.
    for active in (
        "DeletionAuditExporterDown/critical",
        "DeletionAuditDatabaseDown/critical",
        "DeletionIntegrityChecksStale/warning",
    ):
        assert state[active]["status"]["state"] == "active", active
    wait_for(lambda: http.select("/pagerduty", "DeletionAuditDatabaseDown"), what="cause page")
    assert not http.select("/pagerduty", f"DeletionErrorRateHigh critical summary for {service}")

    # Escalations are per incident and carry no source: the escalation of the monitoring incident
    # (the cause's own) is never silenced by the cause, and pages the senior engineer.
    am.post(escalation(service, "senior", "monitoring"))
    state = wait_for(
        lambda: (s := am.alerts(service)) and "DeletionEscalationSenior/critical" in s and s,
        what="the escalation",
    )
    assert state["DeletionEscalationSenior/critical"]["status"]["state"] == "active"
    senior = wait_for(
        lambda: [
            p
            for p in http.select("/pagerduty", service)
            if p["body"]["routing_key"] == KEYS["pagerduty_senior_routing_key"]
        ],
        what="the escalation of the monitoring incident",
    )
    assert senior[0]["body"]["payload"]["custom_details"]["incident"] == "monitoring"

    # The integrity equivalent.
    am.post(alert(service, "DeletionIntegrityDatabaseDown", "critical", source="integrity"))
    wait_for(
        lambda: (
            am.alerts(service)["DeletionIntegrityChecksStale/warning"]["status"]["state"]
            == "suppressed"
        ),
        what="the integrity symptom to be inhibited",
    )


def test_resolving_stops_repeats(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    am.post(alert(service, "DeletionCompletenessAuditFailed", "critical", source="integrity"))
    # repeat_interval is 2 s in the test copy: the page is re-sent while the alert fires.
    pages = wait_for(
        lambda: (p := http.select("/pagerduty", service)) and len(p) >= 2 and p,
        what="a repeated page",
    )
    dedup_key = pages[0]["body"]["dedup_key"]
    assert {p["body"]["dedup_key"] for p in pages} == {dedup_key}
    assert {p["body"]["event_action"] for p in pages} == {"trigger"}

    am.post(
        alert(
            service,
            "DeletionCompletenessAuditFailed",
            "critical",
            resolved=True,
            source="integrity",
        )
    )
    resolve = wait_for(
        lambda: [
            p for p in http.select("/pagerduty", service) if p["body"]["event_action"] == "resolve"
        ],
        what="the resolve event",
    )
    assert resolve[0]["body"]["dedup_key"] == dedup_key  # closes the same incident
    count = len(http.select("/pagerduty", service))
    time.sleep(5)  # more than two repeat intervals
    after = http.select("/pagerduty", service)[count:]
    assert [
        p["body"]["event_action"] for p in after if p["body"]["event_action"] == "trigger"
    ] == []


def test_one_incident_is_one_pagerduty_incident_per_level(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    """The alerts one fault raises (error ratio, post-deploy ladder, two burn-rate pairs) and the
    incident's escalations: one event stream with one dedup key per PagerDuty receiver, later
    alerts update it, the resolve closes it, nothing triggers after. Another incident of the same
    service (integrity) is a PagerDuty incident of its own."""
    http, _ = sinks
    fresh = timedelta(0)
    burn = {"category": "slo"}
    fault = [
        alert(service, "DeletionErrorRateHigh", "critical", started=fresh),
        alert(service, "DeletionErrorRatePostDeploy", "critical", started=fresh),
    ]
    later = [
        alert(service, "DeletionErrorBudgetBurn", "critical", **burn, long_window="1h"),
        alert(service, "DeletionErrorBudgetBurn", "critical", **burn, long_window="6h"),
    ]
    other = alert(service, "DeletionCompletenessAuditFailed", "critical", category="integrity")
    levels = [escalation(service, "senior", "availability")]
    levels.append(escalation(service, "manager", "availability"))

    def events(key: str, incident: str = "availability") -> list[dict[str, Any]]:
        return [
            p["body"]
            for p in http.select("/pagerduty", service)
            if p["body"]["routing_key"] == KEYS[key]
            and p["body"]["payload"]["custom_details"]["incident"] == incident
        ]

    am.post(*fault)
    (first, *_) = wait_for(lambda: events("pagerduty_oncall_routing_key"), what="the page")
    # Both alerts of the same evaluation arrive in the first event: one page, not two.
    assert first["payload"]["custom_details"]["num_firing"] == "2"
    am.post(*later, other, *levels)
    wait_for(
        lambda: any(
            e["payload"]["custom_details"]["num_firing"] == "4"
            for e in events("pagerduty_oncall_routing_key")
        ),
        what="the burn rates joining the on-call incident",
    )
    wait_for(lambda: events("pagerduty_manager_routing_key"), what="the manager page")
    wait_for(lambda: events("pagerduty_oncall_routing_key", "integrity"), what="integrity page")

    # One dedup key per receiver, the hash of the (route, service, incident) group key.
    expected = {
        "pagerduty_oncall_routing_key": dedup_key('{severity="critical"}', service, "availability"),
        "pagerduty_senior_routing_key": dedup_key('{escalation="senior"}', service, "availability"),
        "pagerduty_manager_routing_key": dedup_key(
            '{escalation="manager"}', service, "availability"
        ),
    }
    for key, dedup in expected.items():
        assert {e["dedup_key"] for e in events(key)} == {dedup}, key
        assert {e["event_action"] for e in events(key)} == {"trigger"}, key
    (other_key,) = {e["dedup_key"] for e in events("pagerduty_oncall_routing_key", "integrity")}
    assert other_key == dedup_key('{severity="critical"}', service, "integrity")
    # The Slack copy of the availability page is one thread (one group), whatever joined it.
    copies = [
        m["body"]["attachments"][0]
        for m in http.select("/slack", service)
        if m["body"]["channel"] == "#ops-alerts"
        and "incident=availability" in m["body"]["attachments"][0]["footer"]
        and "alertname=" not in m["body"]["attachments"][0]["footer"]
    ]
    assert copies and {c["footer"].strip() for c in copies} == {
        f"group: incident=availability service={service}"
    }
    assert any(c["title"].startswith("[FIRING:4] Incident · critical") for c in copies), [
        c["title"] for c in copies
    ]

    # Resolved: one resolve per receiver closes the same incident; nothing triggers after it.
    am.post(*(dict(a, endsAt=datetime.now(UTC).isoformat()) for a in [*fault, *later]))
    am.post(*(escalation(service, level, "availability", resolved=True) for level in LEVELS))
    for key in expected:
        wait_for(
            lambda key=key: [e for e in events(key) if e["event_action"] == "resolve"],
            what=f"the resolve of {key}",
        )
    time.sleep(5)  # more than two repeat intervals of the test copy
    for key, dedup in expected.items():
        actions = [e["event_action"] for e in events(key)]
        assert actions.count("resolve") == 1, (key, actions)
        assert actions[-1] == "resolve", (key, actions)  # no trigger after the resolve
        assert {e["dedup_key"] for e in events(key)} == {dedup}


def test_security_alert_reaches_security_channel_and_its_severity_route(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    fresh = timedelta(0)  # one post, one group_wait: both alerts in the first message
    am.post(
        alert(service, "DeletionForbiddenDeletion", "critical", started=fresh, category="security"),
        alert(
            service,
            "DeletionAuthorizationFailuresHigh",
            "warning",
            started=fresh,
            category="security",
        ),
    )

    def channel(name: str) -> list[dict[str, Any]]:
        return [m["body"] for m in http.select("/slack", service) if m["body"]["channel"] == name]

    # The security channel: one message stream for the security incident, both alerts in it.
    (msg, *_) = wait_for(lambda: channel("#security-alerts"), what="the security channel")
    attachment = msg["attachments"][0]
    assert attachment["title"].startswith("[FIRING:2] Incident · mixed severities")
    assert "DeletionForbiddenDeletion" in attachment["text"]
    assert "DeletionAuthorizationFailuresHigh" in attachment["text"]
    assert attachment["footer"].strip() == f"group: incident=security service={service}"
    # The ops channel: the critical's copy and the warning, each from its severity route.
    ops = wait_for(
        lambda: (m := channel("#ops-alerts")) and len(m) >= 2 and m, what="the ops channel"
    )
    titles = sorted(m["attachments"][0]["title"] for m in ops)
    assert any(t.startswith("[FIRING:1] DeletionForbiddenDeletion · critical") for t in titles)
    assert any(
        t.startswith("[FIRING:1] DeletionAuthorizationFailuresHigh · warning") for t in titles
    )
    (page, *_) = wait_for(lambda: http.select("/pagerduty", service), what="on-call page")
    assert page["body"]["routing_key"] == KEYS["pagerduty_oncall_routing_key"]
    # A warning never pages.
    assert not http.select("/pagerduty", "DeletionAuthorizationFailuresHigh")


@pytest.mark.parametrize("level", ["senior", "manager"])
def test_escalation_pages_the_next_level_with_its_own_key(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str, level: str
) -> None:
    http, _ = sinks
    am.post(escalation(service, level, "availability"))
    (page, *_) = wait_for(lambda: http.select("/pagerduty", service), what=f"the {level} page")
    assert page["body"]["routing_key"] == KEYS[f"pagerduty_{level}_routing_key"]
    assert page["body"]["payload"]["severity"] == "critical"
    details = page["body"]["payload"]["custom_details"]
    assert (details["incident"], details["escalation"]) == ("availability", level)
    assert page["body"]["payload"]["component"] == "availability"
    wait_for(lambda: http.select("/slack", service), what="the Slack copy")
    time.sleep(1.5)
    # On-call was paged by the original alert; the escalation must not page on-call again.
    keys = {p["body"]["routing_key"] for p in http.select("/pagerduty", service)}
    assert keys == {KEYS[f"pagerduty_{level}_routing_key"]}


def test_info_goes_to_the_email_digest(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, smtp = sinks
    # Started now: the digest group waits its group_wait for both (see the grouping test).
    fresh = timedelta(0)
    am.post(
        alert(service, "DeletionLatencyAnomaly", "info", started=fresh, category="anomaly"),
        alert(
            service, "DeletionAppMemoryAboveBaseline", "info", started=fresh, category="resources"
        ),
    )
    mails = wait_for(lambda: smtp.select(service), what="the digest email")
    mail = mails[0]
    # The password came from smtp_auth_password_file (the server rejects any other).
    assert smtp.passwords and set(smtp.passwords) == {KEYS["smtp_auth_password"]}
    assert mail["to"] == ["ops@ready-set.app"]
    message = mail["message"]
    # One digest for the service: both info alerts in one mail.
    assert message["Subject"] == (
        f"[deletion-monitoring] Daily digest: 2 alert(s) firing for {service}"
    )
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        for expected in (
            f"DeletionLatencyAnomaly info summary for {service}",
            "DeletionAppMemoryAboveBaseline info description",
            RUNBOOK.format("DeletionLatencyAnomaly"),
            DASHBOARD,
        ):
            assert expected in body
    assert "Severity:    info" in text
    assert not http.select("/slack", service) and not http.select("/pagerduty", service)


def test_watchdog_pings_the_heartbeat_and_nothing_else(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, smtp = sinks
    watchdog = alert(service, "Watchdog", "info", category="meta", source="prometheus")
    am.post(watchdog)
    # repeat_interval is 2 s in the test copy (1 min in production): it keeps pinging.
    pings = wait_for(
        lambda: (p := http.select("/heartbeat", service)) and len(p) >= 2 and p,
        what="two heartbeat pings",
    )
    assert pings[0]["headers"]["Authorization"] == f"Bearer {KEYS['heartbeat_token']}"
    assert pings[0]["body"]["commonLabels"]["alertname"] == "Watchdog"
    assert not http.select("/slack", service) and not http.select("/pagerduty", service)
    assert not smtp.select(service)


def test_unroutable_alert_reaches_the_default_receiver(
    am: Alertmanager, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    am.post(alert(service, "SomebodysNewAlert", None))  # no severity label
    (msg, *_) = wait_for(lambda: http.select("/slack", service), what="default")
    assert msg["body"]["channel"] == "#ops-alerts"
    assert msg["body"]["attachments"][0]["title"].startswith("[UNROUTED")


# --- High availability -------------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path, am_config: Path) -> Iterator[tuple[Alertmanager, Alertmanager]]:
    gossip = [free_port(), free_port()]
    common = [
        "--cluster.gossip-interval=50ms",
        "--cluster.pushpull-interval=1s",
        "--cluster.peer-timeout=1s",
        "--cluster.settle-timeout=5s",
    ]
    nodes: list[Alertmanager] = []
    try:
        for me, peer in ((0, 1), (1, 0)):
            args = [
                f"--cluster.listen-address=127.0.0.1:{gossip[me]}",
                f"--cluster.advertise-address=127.0.0.1:{gossip[me]}",
                f"--cluster.peer=127.0.0.1:{gossip[peer]}",
                *common,
            ]
            nodes.append(Alertmanager(am_config, tmp_path / f"node{me}", cluster=args))
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            node.stop()


def test_silence_created_on_one_node_holds_on_the_other(
    cluster: tuple[Alertmanager, Alertmanager], sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    http, _ = sinks
    node_a, node_b = cluster
    wait_for(
        lambda: len(node_b.api("GET", "/status")["cluster"]["peers"]) == 2,
        what="the two nodes to see each other",
    )
    now = datetime.now(UTC)
    created = node_a.api(
        "POST",
        "/silences",
        {
            "matchers": [
                {"name": "service", "value": service, "isRegex": False, "isEqual": True},
                {"name": "alertname", "value": "DeletionErrorRateHigh", "isRegex": False},
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test_alertmanager_live",
            "comment": "maintenance",
        },
    )
    silence_id = created["silenceID"]
    # Gossiped to node B...
    wait_for(
        lambda: any(s["id"] == silence_id for s in node_b.api("GET", "/silences")),
        what="the silence on node B",
    )
    # ...and effective there: an alert sent only to B is silenced by A's silence, while an
    # unsilenced alert sent with it proves that B does notify.
    node_b.post(
        alert(service, "DeletionErrorRateHigh", "critical"),
        alert(service, "DeletionTimeoutsHigh", "critical"),
    )
    wait_for(lambda: http.select("/pagerduty", "DeletionTimeoutsHigh"), what="B's page")
    state = node_b.alerts(service)
    assert state["DeletionErrorRateHigh/critical"]["status"]["state"] == "suppressed"
    assert state["DeletionErrorRateHigh/critical"]["status"]["silencedBy"] == [silence_id]
    assert state["DeletionTimeoutsHigh/critical"]["status"]["state"] == "active"
    time.sleep(2)
    assert not http.select("/pagerduty", f"DeletionErrorRateHigh critical summary for {service}")
    assert not http.select("/slack", f"DeletionErrorRateHigh critical summary for {service}")


def test_digest_is_muted_outside_its_window_and_sent_when_it_opens(
    tmp_path: Path, am_config: Path, sinks: tuple[HttpSink, SmtpSink], service: str
) -> None:
    # The module's copy keeps the digest window always open. Here the window is the committed
    # route with a one-hour window twelve hours away: the info alert must wait. "Opening" the
    # window is a config reload with the always-open interval; the alert that accumulated
    # meanwhile is mailed then. (A real wall-clock window would cost minutes of test time.)
    _, smtp = sinks
    cfg = yaml.safe_load(am_config.read_text())
    (digest,) = [t for t in cfg["time_intervals"] if t["name"] == "daily-digest"]
    always_open = digest["time_intervals"]
    hour = (datetime.now(UTC).hour + 12) % 24
    digest["time_intervals"] = [
        {
            "times": [{"start_time": f"{hour:02d}:00", "end_time": f"{hour + 1:02d}:00"}],
            "location": "UTC",
        }
    ]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    node = Alertmanager(path, tmp_path / "am")
    try:
        node.post(alert(service, "DeletionAppMemoryFillingUp", "info", category="resources"))
        wait_for(lambda: node.alerts(service), what="the alert to be received")
        time.sleep(3)  # group_wait 1 s, group_interval 1 s: several muted flushes
        assert not smtp.select(service)

        digest["time_intervals"] = always_open
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        reload = urllib.request.Request(node.url + "/-/reload", method="POST")
        with urllib.request.urlopen(reload, timeout=10) as resp:
            assert resp.status == 200
        mails = wait_for(lambda: smtp.select(service), what="the digest once the window opened")
        assert "DeletionAppMemoryFillingUp info summary" in mails[0]["message"].as_string()
    finally:
        node.stop()
