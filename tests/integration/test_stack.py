"""The demo's plumbing: its copy of the Alertmanager config keeps every notification on this
machine, and a real Alertmanager running it delivers to the recording sinks (Slack, PagerDuty,
SMTP) attributed to the right receiver."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from deletion_monitor_demo.services import ManagedProcess, free_port, require_binary, wait_http
from deletion_monitor_demo.sinks import HttpSink, NotificationLog, SmtpSink
from deletion_monitor_demo.stack import REPO_ROOT, demo_alertmanager_config
from deletion_monitor_tools.generate import render_all

SINK = "http://127.0.0.1:9"


def _demo_config(tmp_path: Path, sink_url: str = SINK, smtp_port: int = 2525) -> dict[str, Any]:
    # Rendered at compression 60 as the demo does: group waits of about a second.
    text = render_all(env={"TIME_COMPRESSION": "60"})["alertmanager/alertmanager.yml"]
    return demo_alertmanager_config(
        yaml.safe_load(text),
        secrets_dir=tmp_path / "secrets",
        sink_url=sink_url,
        smtp_port=smtp_port,
        templates_dir=REPO_ROOT / "alertmanager",
        time_compression=60,
    )


def test_demo_alertmanager_config_sends_nothing_off_the_machine(tmp_path: Path) -> None:
    config = _demo_config(tmp_path)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    amtool = require_binary("amtool")
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert config["global"]["smtp_smarthost"] == "127.0.0.1:2525"
    for receiver in config["receivers"]:
        name = receiver["name"]
        for slack in receiver.get("slack_configs", []):
            url = Path(slack["api_url_file"]).read_text()
            assert url == f"{SINK}/slack/{name}" and "api_url" not in slack
        for pd in receiver.get("pagerduty_configs", []):
            assert pd["url"] == f"{SINK}/pagerduty/{name}"
            assert Path(pd["routing_key_file"]).read_text() == f"demo-{name}"
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"] == f"{SINK}/webhook/{name}"
        for mail in receiver.get("email_configs", []):
            assert mail["smarthost"] == "127.0.0.1:2525" and mail["headers"]["X-Demo-Receiver"]
    # Every secret file the copy reads lives in the demo's secrets directory.
    files = [v for v in json.dumps(config).split('"') if v.startswith(str(tmp_path))]
    assert files and all(Path(f).exists() for f in files if "secrets" in f)
    assert "active_time_intervals" not in json.dumps(config["route"])


def _post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC).isoformat()
    body = [
        {
            "labels": labels,
            "annotations": {"summary": f"{labels['alertname']} test"},
            "startsAt": now,
        }
        for labels in alerts
    ]
    req = urllib.request.Request(
        f"{url}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


@pytest.fixture
def running(tmp_path: Path):
    log = NotificationLog()
    sink = HttpSink(log).start()
    smtp = SmtpSink(log, free_port()).start()
    config = _demo_config(tmp_path, sink.url, smtp.port)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = ManagedProcess(
        [
            require_binary("prometheus-alertmanager"),
            f"--config.file={path}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp_path / "am.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready")
        yield f"http://127.0.0.1:{port}", log
    finally:
        proc.stop()
        sink.stop()
        smtp.stop()


def test_real_alertmanager_delivers_the_demo_copy_to_the_sinks(running) -> None:
    url, log = running
    base = {"service": "user-deletion", "source": "audit"}
    _post_alerts(
        url,
        [
            {
                **base,
                "alertname": "DemoCritical",
                "severity": "critical",
                "category": "availability",
                "incident": "availability",
            },
            # Every rendered alert carries its incident (alert() in alerts/lib.libsonnet); the
            # security route matches on it.
            {
                **base,
                "alertname": "DemoSecurity",
                "severity": "warning",
                "category": "security",
                "incident": "security",
            },
            {
                **base,
                "alertname": "DemoInfo",
                "severity": "info",
                "category": "anomaly",
                "incident": "anomaly",
            },
        ],
    )
    wanted = {
        ("pagerduty-oncall", "DemoCritical"),
        ("slack-ops", "DemoCritical"),
        ("slack-security", "DemoSecurity"),
        ("slack-ops", "DemoSecurity"),
        ("email-digest", "DemoInfo"),
    }
    deadline = time.monotonic() + 30
    got: set[tuple[str, str]] = set()
    while time.monotonic() < deadline and not wanted <= got:
        got = {(n.receiver, name) for n in log.all() for name in n.alertnames}
        time.sleep(0.3)
    assert wanted <= got, f"missing {wanted - got}; got {sorted(got)}"
    page = log.find("pagerduty-oncall", "DemoCritical")[0]
    assert page.channel == "pagerduty" and page.payload["routing_key"] == "demo-pagerduty-oncall"
    mail = log.find("email-digest", "DemoInfo")[0]
    assert mail.channel == "email" and "DemoInfo" in mail.title + str(mail.payload)
    # Nothing went to a receiver the tree does not name for these alerts.
    assert not log.find("pagerduty-oncall", "DemoSecurity")
    assert not log.find("pagerduty-oncall", "DemoInfo")


def test_a_taken_preferred_port_is_announced(tmp_path: Path, capsys) -> None:
    """`make demo` prefers the usual ports; one that is taken falls back to a free port, and says
    so in one status line, so the usual URL is not mistaken for this stack."""
    import contextlib
    import socket

    from deletion_monitor_demo.stack import DEFAULT_PORTS, Stack, StackOptions

    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with contextlib.closing(holder):
        with contextlib.suppress(OSError):  # already held by someone else: taken all the same
            holder.bind(("127.0.0.1", DEFAULT_PORTS["prometheus"]))
            holder.listen()
        stack = Stack(StackOptions(workdir=tmp_path, fixed_ports=True))
        stack._pick_ports()
    lines = capsys.readouterr().out.splitlines()
    assert stack.ports["prometheus"] != 9090
    assert f"demo: port 9090 (prometheus) is taken: using {stack.ports['prometheus']}" in lines
    # One line per fallback, none for a port that was free (whatever else this machine holds).
    fallbacks = {
        f"demo: port {port} ({name}) is taken: using {stack.ports[name]}"
        for name, port in DEFAULT_PORTS.items()
        if stack.ports[name] != port
    }
    assert set(lines) == fallbacks and len(lines) == len(fallbacks)

    # Tests (free ports by design) print nothing.
    Stack(StackOptions(workdir=tmp_path, fixed_ports=False))._pick_ports()
    assert capsys.readouterr().out == ""
