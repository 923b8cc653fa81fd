"""Local stand-ins for Slack, PagerDuty, webhooks and email: record and print every notification.

The demo and the end-to-end tests point Alertmanager at these instead of the real services
(only Slack/PagerDuty/email are replaced; Alertmanager itself is real). The demo copy of the
Alertmanager config (deletion_monitor_demo.stack) puts the receiver's name in every URL
(`/slack/<receiver>`, `/pagerduty/<receiver>`, `/webhook/<receiver>`) and in an
`X-Demo-Receiver` email header, so each notification is attributed to the receiver that sent it.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TITLE = re.compile(r"^\[(?P<status>FIRING|RESOLVED)(?::\d+)?\]\s+(?P<alertname>[A-Za-z_:][\w:]*)")
_LABEL_ALERTNAME = re.compile(r"alertname=([A-Za-z_:][\w:]*)")
_EMAIL_ALERT = re.compile(r"^== ([A-Za-z_:][\w:]*) \((firing|resolved)\)", re.MULTILINE)
# The Slack footer names the Alertmanager group: "group: incident=availability service=x ".
_FOOTER_INCIDENT = re.compile(r"\bincident=([\w-]+)")
# The title word of a group of several alerts (alertmanager/templates/deletion.tmpl).
_GROUP_TITLE = "Incident"


@dataclass(frozen=True)
class Notification:
    """One message a receiver sent."""

    receiver: str
    channel: str  # slack | pagerduty | webhook | email
    at: float  # unix time received
    status: str  # firing | resolved
    alertnames: tuple[str, ...]
    title: str = ""
    payload: Any = field(default=None, compare=False, repr=False)
    # The incident label of the group, and what identifies the group at the receiver: the
    # PagerDuty dedup key, the Slack footer (group labels). Empty when the message has none.
    incident: str = ""
    key: str = ""

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.at))
        names = ",".join(self.alertnames) or "?"
        return f"{stamp} {self.channel:<9} {self.receiver:<18} {self.status:<8} {names}"


class NotificationLog:
    """Thread-safe list of notifications, with the queries the demo and the tests need."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._items: list[Notification] = []
        self.echo = echo
        # Receivers not echoed (the heartbeat pings every few seconds in a compressed demo).
        self.quiet: set[str] = {"heartbeat"}

    def add(self, note: Notification) -> None:
        with self._lock:
            self._items.append(note)
            # Under the lock: notifications arrive on several threads, lines must not interleave.
            if self.echo is not None and note.receiver not in self.quiet:
                self.echo(note.line())

    def all(self) -> list[Notification]:
        with self._lock:
            return list(self._items)

    def find(
        self,
        receiver: str | None = None,
        alertname: str | None = None,
        status: str | None = None,
        since: float = 0.0,
    ) -> list[Notification]:
        return [
            n
            for n in self.all()
            if n.at >= since
            and (receiver is None or n.receiver == receiver)
            and (alertname is None or alertname in n.alertnames)
            and (status is None or n.status == status)
        ]

    def counts(self, since: float = 0.0) -> dict[str, int]:
        """Notifications per receiver."""
        return dict(sorted(Counter(n.receiver for n in self.all() if n.at >= since).items()))

    def opened(self, since: float = 0.0, until: float | None = None) -> list[Notification]:
        """The PagerDuty events that opened an incident: a `trigger` whose dedup key is not open
        (its first trigger, or the first after a `resolve`), as at PagerDuty; a trigger of an
        open key only updates it. Keys opened before `since` count as open."""
        open_keys: set[tuple[str, str]] = set()
        found: list[Notification] = []
        for n in self.all():
            if n.channel != "pagerduty":
                continue
            key = (n.receiver, n.key)
            if n.status == "resolved":
                open_keys.discard(key)
            elif key not in open_keys:
                open_keys.add(key)
                if n.at >= since and (until is None or n.at < until):
                    found.append(n)
        return found

    def pages(self, since: float = 0.0, until: float | None = None) -> dict[str, int]:
        """PagerDuty incidents opened per receiver (see opened())."""
        return dict(sorted(Counter(n.receiver for n in self.opened(since, until)).items()))

    def incidents(self, since: float = 0.0, until: float | None = None) -> dict[str, set[str]]:
        """Incidents each receiver was told about (a firing message), by incident label."""
        told: dict[str, set[str]] = {}
        for n in self.all():
            if n.status == "firing" and n.at >= since and (until is None or n.at < until):
                if n.receiver != "heartbeat":
                    told.setdefault(n.receiver, set()).add(n.incident or "?")
        return told


def parse_slack(receiver: str, body: dict[str, Any]) -> Notification:
    attachments = body.get("attachments") or [{}]
    title = str(attachments[0].get("title") or body.get("text") or "")
    text = " ".join(str(a.get("text") or "") for a in attachments)
    match = _TITLE.match(title)
    names = [match.group("alertname")] if match and match.group("alertname") != _GROUP_TITLE else []
    names += [n for n in _LABEL_ALERTNAME.findall(text) if n not in names]
    status = match.group("status").lower() if match else "firing"
    footer = str(attachments[0].get("footer") or "").strip()
    found = _FOOTER_INCIDENT.search(footer)
    incident = found.group(1) if found else ""
    return Notification(
        receiver, "slack", time.time(), status, tuple(names), title, body, incident, footer
    )


def parse_pagerduty(receiver: str, body: dict[str, Any]) -> Notification:
    payload = body.get("payload") or {}
    details = payload.get("custom_details") or {}
    name = str(details.get("alertname") or "")
    names = [name] if name else []
    names += [n for n in _LABEL_ALERTNAME.findall(str(details.get("firing", ""))) if n not in names]
    status = "resolved" if body.get("event_action") == "resolve" else "firing"
    title = str(payload.get("summary") or "")
    incident = str(details.get("incident") or payload.get("component") or "")
    key = str(body.get("dedup_key") or "")
    return Notification(
        receiver, "pagerduty", time.time(), status, tuple(names), title, body, incident, key
    )


def parse_webhook(receiver: str, body: dict[str, Any]) -> Notification:
    names: list[str] = []
    for alert in body.get("alerts") or []:
        name = (alert.get("labels") or {}).get("alertname")
        if name and name not in names:
            names.append(name)
    status = str(body.get("status") or "firing")
    return Notification(receiver, "webhook", time.time(), status, tuple(names), "", body)


def parse_email(raw: bytes) -> Notification:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    receiver = str(msg.get("X-Demo-Receiver") or "email")
    part = msg.get_body(preferencelist=("plain", "html"))
    text = part.get_content() if part is not None else ""
    found = _EMAIL_ALERT.findall(text)
    names = tuple(dict.fromkeys(n for n, _ in found))
    status = "firing" if not found or any(s == "firing" for _, s in found) else "resolved"
    return Notification(receiver, "email", time.time(), status, names, str(msg["Subject"]), text)


class _SinkHandler(BaseHTTPRequestHandler):
    log: NotificationLog
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        if len(parts) < 2 or parts[0] not in ("slack", "pagerduty", "webhook"):
            self._answer(404, {"error": "POST /slack|pagerduty|webhook/<receiver>"})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._answer(400, {"error": "body is not JSON"})
            return
        parser = {"slack": parse_slack, "pagerduty": parse_pagerduty, "webhook": parse_webhook}
        self.log.add(parser[parts[0]](parts[1], body))
        if parts[0] == "pagerduty":
            # What the Events API v2 answers; Alertmanager checks for 202.
            self._answer(202, {"status": "success", "message": "Event processed"})
        else:
            self._answer(200, {"ok": True})

    def do_GET(self) -> None:
        self._answer(200, {"notifications": [n.line() for n in self.log.all()]})


class HttpSink:
    """Slack/PagerDuty/webhook receiver on 127.0.0.1:port (a thread of the calling process)."""

    def __init__(self, log: NotificationLog, port: int = 0, host: str = "127.0.0.1") -> None:
        handler = type("Handler", (_SinkHandler,), {"log": log})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, daemon=True, name="http-sink"
        )

    def start(self) -> HttpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpSink:
    """An SMTP server (aiosmtpd) that records every mail Alertmanager sends."""

    def __init__(self, log: NotificationLog, port: int, host: str = "127.0.0.1") -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:  # a dev extra: `make setup` installs it
            raise RuntimeError("aiosmtpd is not installed; run `make setup`") from exc
        notes = log

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                notes.add(parse_email(envelope.original_content or envelope.content))
                return "250 Message accepted for delivery"

        self.port = port
        self.controller = Controller(Handler(), hostname=host, port=port)

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
