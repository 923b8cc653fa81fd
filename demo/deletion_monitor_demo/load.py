"""Load generator of the demo: seeds users on the reference schema and deletes them over HTTP.

It plays the rest of the application: it creates profiles of the six user types with realistic
dependent rows (accounts, sessions, addresses, catering and on-demand requests, audits,
dispatches, uploads; now and then a large one whose cascade passes 100 rows), and a pool of
administrators whose bearer tokens it mints with the app's secret. Then it sends
DELETE /api/users/{id} at a steady Poisson rate from a bounded set of workers.

Scenarios (SCENARIOS) are the incidents the demo and the end-to-end tests play: an app fault
switched on through /admin/faults, an authorization attack sent from here, or a stack action
(stopping an exporter or the database) that only `deletion_monitor_demo.run` can perform.

    deletion-monitor-demo load --app-url http://127.0.0.1:8080 --dsn postgresql://... \
        --token-secret S --rate 5 --scenario error-spike --duration 60
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import queue
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from deletion_monitor.common.log import setup_logging
from deletion_monitor.common.redaction import redact
from deletion_monitor_demo.app.auth import make_token

HELP = "seed users and drive DELETE /api/users/{id} traffic against the demo app"
log = logging.getLogger("deletion_monitor_demo.load")

# Who gets deleted, roughly as in a marketplace: mostly clients, then vendors and drivers.
TARGET_WEIGHTS = {"CLIENT": 50, "VENDOR": 20, "DRIVER": 20, "HELPDESK": 5, "ADMIN": 5}
LARGE_USER_PROBABILITY = 0.04  # a long-time customer: > 100 dependent rows


@dataclass(frozen=True)
class Scenario:
    """One incident: what is switched on, and what the monitoring should say about it."""

    name: str
    description: str
    app_faults: dict[str, Any] = field(default_factory=dict)
    attack_rate: float = 0.0  # bogus-token / forbidden requests per second, sent from here
    stack_action: str | None = None  # stop-audit-exporter | stop-database (demo.py only)
    expected_alerts: tuple[str, ...] = ()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "normal traffic, no fault: only the Watchdog heartbeat is sent"),
        Scenario(
            "error-spike",
            "25 % of deletions hit a database error inside their transaction",
            app_faults={"error_rate": 0.25},
            expected_alerts=("DeletionErrorRateHigh", "DeletionEscalationSenior"),
        ),
        Scenario(
            "latency",
            "every deletion spends 6 s more in the database (p95 above 5 s)",
            app_faults={"latency_seconds": 6.0},
            expected_alerts=("DeletionLatencyP95High",),
        ),
        Scenario(
            "timeouts",
            "30 % of deletions outlive the statement timeout",
            app_faults={"timeout_rate": 0.3},
            expected_alerts=("DeletionTimeoutsHigh",),
        ),
        Scenario(
            "auth-attack",
            "2 requests/s with forged, missing or non-admin tokens",
            attack_rate=2.0,
            expected_alerts=("DeletionAuthorizationFailuresHigh",),
        ),
        Scenario(
            "auth-bypass",
            "the endpoint stops checking tokens: the blackbox probe's bogus token gets 404",
            app_faults={"auth_bypass": True},
            expected_alerts=("DeletionEndpointAuthProbeFailed",),
        ),
        Scenario(
            "memory-leak",
            "every deletion leaks 2 MiB until memory nears the app's limit",
            app_faults={"leak_bytes_per_request": 2 * 1024 * 1024},
            expected_alerts=("DeletionAppMemoryHigh",),
        ),
        Scenario(
            "orphans",
            "the manual clean-up of dispatches, file_uploads and addresses is skipped",
            app_faults={"skip_cleanup": True},
            expected_alerts=("DeletionOrphanedRecords",),
        ),
        Scenario(
            "exporter-down",
            "the audit exporter is stopped",
            stack_action="stop-audit-exporter",
            expected_alerts=("DeletionAuditExporterDown",),
        ),
        Scenario(
            "database-down",
            "PostgreSQL is stopped: deletions fail, both exporters report the outage",
            stack_action="stop-database",
            expected_alerts=("DeletionAuditDatabaseDown", "DeletionIntegrityDatabaseDown"),
        ),
    )
}


@dataclass(frozen=True)
class Actor:
    id: str
    type: str
    token: str


class Seeder:
    """Creates profiles and their dependent rows straight in the database."""

    def __init__(self, dsn: str, token_secret: str, rng: random.Random | None = None) -> None:
        self.dsn = dsn
        self.token_secret = token_secret
        self.rng = rng or random.Random()
        self._n = 0

    def _email(self, kind: str) -> str:
        self._n += 1
        return f"{kind.lower()}-{uuid.uuid4().hex[:12]}@demo.example"

    def actors(self, conn: psycopg.Connection) -> dict[str, list[Actor]]:
        """Three admins, one super admin, a helpdesk agent and a client (for forbidden calls)."""
        wanted = [("ADMIN", 3), ("SUPER_ADMIN", 1), ("HELPDESK", 1), ("CLIENT", 1)]
        out: dict[str, list[Actor]] = {}
        with conn.transaction():
            for kind, count in wanted:
                for _ in range(count):
                    uid = self._profile(conn, kind, name=f"demo {kind.lower()}")
                    out.setdefault(kind, []).append(
                        Actor(uid, kind, make_token(self.token_secret, uid))
                    )
        return out

    def _profile(self, conn: psycopg.Connection, kind: str, name: str) -> str:
        uid = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO profiles (id, email, name, type) VALUES (%s, %s, %s, %s)",
            (uid, self._email(kind), name, kind),
        )
        return uid

    def users(self, conn: psycopg.Connection, count: int) -> list[tuple[str, str]]:
        """`count` deletable users with dependent rows, in one transaction."""
        made: list[tuple[str, str]] = []
        rng = self.rng
        kinds = list(TARGET_WEIGHTS)
        weights = list(TARGET_WEIGHTS.values())
        with conn.transaction(), conn.cursor() as cur:
            for _ in range(count):
                kind = rng.choices(kinds, weights)[0]
                scale = 12 if rng.random() < LARGE_USER_PROBABILITY else 1
                uid = self._profile(conn, kind, name=f"demo {kind.lower()}")

                def n(lo: int, hi: int, scale: int = scale) -> int:
                    return rng.randint(lo, hi) * scale

                cur.executemany(
                    'INSERT INTO accounts ("userId", provider, "providerAccountId") '
                    "VALUES (%s, %s, %s)",
                    [(uid, "credentials", uuid.uuid4().hex) for _ in range(rng.randint(1, 2))],
                )
                cur.executemany(
                    'INSERT INTO sessions ("sessionToken", "userId", expires) '
                    "VALUES (%s, %s, now() + interval '30 days')",
                    [(uuid.uuid4().hex, uid) for _ in range(rng.randint(0, 3))],
                )
                addresses = [str(uuid.uuid4()) for _ in range(rng.randint(0, 3))]
                cur.executemany(
                    'INSERT INTO addresses (id, street1, city, "createdBy") '
                    "VALUES (%s, %s, 'Austin', %s)",
                    [(a, f"{rng.randint(1, 9999)} Main St", uid) for a in addresses],
                )
                cur.executemany(
                    'INSERT INTO user_addresses ("userId", "addressId") VALUES (%s, %s)',
                    [(uid, a) for a in addresses],
                )
                pickup = addresses[0] if addresses else None
                if kind in ("CLIENT", "VENDOR"):
                    cur.executemany(
                        'INSERT INTO catering_requests ("userId", "pickupAddressId") '
                        "VALUES (%s, %s)",
                        [(uid, pickup) for _ in range(n(0, 8))],
                    )
                    cur.executemany(
                        'INSERT INTO on_demand_requests ("userId", "pickupAddressId") '
                        "VALUES (%s, %s)",
                        [(uid, pickup) for _ in range(n(0, 4))],
                    )
                    cur.executemany(
                        'INSERT INTO dispatches ("userId") VALUES (%s)',
                        [(uid,) for _ in range(n(0, 2))],
                    )
                if kind == "DRIVER":
                    cur.executemany(
                        'INSERT INTO dispatches ("driverId") VALUES (%s)',
                        [(uid,) for _ in range(n(1, 10))],
                    )
                cur.executemany(
                    'INSERT INTO user_audits ("userId", action) VALUES (%s, %s)',
                    [(uid, "UPDATE_PROFILE") for _ in range(n(1, 8))],
                )
                cur.executemany(
                    'INSERT INTO file_uploads ("userId", "fileName", "fileUrl") '
                    "VALUES (%s, %s, %s)",
                    [
                        (uid, f"doc-{i}.pdf", f"https://files.example/{uuid.uuid4().hex}")
                        for i in range(n(0, 3))
                    ],
                )
                made.append((uid, kind))
        return made


@dataclass
class LoadStats:
    """Counts of what was sent and what came back, for the live summary."""

    sent: int = 0
    dropped: int = 0  # not sent because every worker was busy (the app is too slow)
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    seed_errors: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "dropped": self.dropped,
            "seed_errors": self.seed_errors,
            "by_status": dict(sorted(self.by_status.items())),
        }


class LoadGenerator:
    """Deletes seeded users at `rate` per second; attack traffic on top when attack_rate > 0."""

    def __init__(
        self,
        app_url: str,
        dsn: str,
        token_secret: str,
        *,
        rate: float = 5.0,
        concurrency: int = 8,
        noise: float = 0.0,
        seed: int | None = None,
    ) -> None:
        self.app_url = app_url.rstrip("/")
        self.dsn = dsn
        self.rate = rate
        self.concurrency = concurrency
        # Fraction of ordinary traffic that fails for ordinary reasons (unknown id, a
        # self-deletion attempt, a SUPER_ADMIN target): realism in real time; 0 under time
        # compression, where a single failure fills a compressed 5-minute window.
        self.noise = noise
        self.attack_rate = 0.0
        self.rng = random.Random(seed)
        self.seeder = Seeder(dsn, token_secret, random.Random(seed))
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._targets: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._inflight = 0
        self.actors: dict[str, list[Actor]] = {}

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> LoadGenerator:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            self.actors = self.seeder.actors(conn)
            for user in self.seeder.users(conn, max(20, int(self.rate * 10))):
                self._targets.put(user)
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="load")
        for target, name in (
            (self._seed_loop, "load-seed"),
            (self._send_loop, "load-send"),
            (self._attack_loop, "load-attack"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- loops --------------------------------------------------------------------------------

    def _seed_loop(self) -> None:
        """Keep about ten seconds of targets ready; survives a database outage."""
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            want = max(20, int(self.rate * 10))
            if self._targets.qsize() >= want:
                self._stop.wait(0.5)
                continue
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=3)
                for user in self.seeder.users(conn, min(25, want - self._targets.qsize())):
                    self._targets.put(user)
            except psycopg.Error as exc:
                with self._lock:
                    self.stats.seed_errors += 1
                log.warning("seeding failed", extra={"error": redact(str(exc)).splitlines()[0]})
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(1.0)
        if conn is not None:
            conn.close()

    def _tick(self, rate: float) -> bool:
        """Sleep one Poisson inter-arrival time; False once stopped."""
        if rate <= 0:
            self._stop.wait(0.5)
            return False
        return not self._stop.wait(self.rng.expovariate(rate))

    def _submit(self, fn: Any) -> None:
        with self._lock:
            if self._inflight >= self.concurrency:
                self.stats.dropped += 1
                return
            self._inflight += 1
        assert self._pool is not None

        def run() -> None:
            try:
                fn()
            finally:
                with self._lock:
                    self._inflight -= 1

        self._pool.submit(run)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            if self._tick(self.rate):
                self._submit(self._ordinary_request)

    def _attack_loop(self) -> None:
        while not self._stop.is_set():
            if self.attack_rate > 0 and self._tick(self.attack_rate):
                self._submit(self._attack_request)
            elif self.attack_rate <= 0:
                self._stop.wait(0.3)

    # --- requests -----------------------------------------------------------------------------

    def _admin(self) -> Actor:
        return self.rng.choice(self.actors["ADMIN"])

    def _ordinary_request(self) -> None:
        if self.noise and self.rng.random() < self.noise:
            admin = self._admin()
            kind = self.rng.choice(["missing", "self", "super_admin"])
            target = {
                "missing": str(uuid.uuid4()),
                "self": admin.id,
                "super_admin": self.actors["SUPER_ADMIN"][0].id,
            }[kind]
            self.delete(target, admin.token)
            return
        try:
            target, _kind = self._targets.get(timeout=2)
        except queue.Empty:
            with self._lock:
                self.stats.dropped += 1
            return
        self.delete(target, self._admin().token)

    def _attack_request(self) -> None:
        """Someone probing the endpoint: no token, a forged one, or a non-admin's."""
        victim = str(uuid.uuid4())
        kind = self.rng.choice(["missing", "forged", "client", "helpdesk"])
        token = {
            "missing": None,
            "forged": f"{uuid.uuid4()}.{uuid.uuid4().hex}",
            "client": self.actors["CLIENT"][0].token,
            "helpdesk": self.actors["HELPDESK"][0].token,
        }[kind]
        self.delete(victim, token)

    def delete(self, target: str, token: str | None) -> int:
        """One DELETE call; returns the HTTP status (0 when the app did not answer)."""
        req = urllib.request.Request(f"{self.app_url}/api/users/{target}", method="DELETE")
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.read()
        except OSError:
            status = 0
        with self._lock:
            self.stats.sent += 1
            self.stats.by_status[str(status) if status else "no answer"] += 1
        return status


def set_app_faults(app_url: str, faults: dict[str, Any] | None, admin_token: str = "") -> Any:
    """POST the switches to the app (None = reset all); returns the app's new state."""
    path = "/admin/faults" if faults else "/admin/faults/reset"
    req = urllib.request.Request(
        f"{app_url.rstrip('/')}{path}", data=json.dumps(faults or {}).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    if admin_token:
        req.add_header("X-Admin-Token", admin_token)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


# --- the `deletion-monitor-demo load` subcommand -----------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-url", default="http://127.0.0.1:8080")
    parser.add_argument(
        "--dsn",
        default=os.environ.get("DATABASE_URL", ""),
        help="DSN of the app's database, for seeding (default: env DATABASE_URL)",
    )
    parser.add_argument("--token-secret", default=os.environ.get("DEMO_TOKEN_SECRET", ""))
    parser.add_argument("--admin-token", default=os.environ.get("DEMO_ADMIN_TOKEN", ""))
    parser.add_argument("--rate", type=float, default=5.0, help="deletions per second")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.002,
        help="fraction of ordinary calls that fail for ordinary reasons",
    )
    parser.add_argument(
        "--scenario",
        default="healthy",
        help="one of: " + ", ".join(n for n, s in SCENARIOS.items() if not s.stack_action),
    )
    parser.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")


def run(args: argparse.Namespace) -> int:
    setup_logging()
    scenario = SCENARIOS.get(args.scenario)
    problems = []
    if scenario is None:
        problems.append(f"--scenario: unknown {args.scenario!r} (one of {', '.join(SCENARIOS)})")
    elif scenario.stack_action:
        problems.append(
            f"--scenario: {args.scenario} needs the whole stack; use "
            "`deletion-monitor-demo run --scenario` instead"
        )
    if not args.dsn:
        problems.append("--dsn: required (or set DATABASE_URL)")
    if not args.token_secret:
        problems.append("--token-secret: required (or set DEMO_TOKEN_SECRET)")
    if args.rate <= 0 or args.concurrency < 1 or not 0 <= args.noise <= 1:
        problems.append("--rate, --concurrency: must be positive; --noise: between 0 and 1")
    if problems:
        print(f"load: {problems[0]}", file=sys.stderr)
        return 2
    assert scenario is not None
    gen = LoadGenerator(
        args.app_url,
        args.dsn,
        args.token_secret,
        rate=args.rate,
        concurrency=args.concurrency,
        noise=args.noise,
    )
    try:
        set_app_faults(args.app_url, scenario.app_faults or None, args.admin_token)
        gen.start()
    except (OSError, psycopg.Error) as exc:
        print(f"load: cannot start: {redact(str(exc)).splitlines()[0]}", file=sys.stderr)
        return 2
    gen.attack_rate = scenario.attack_rate
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.1, (deadline or 1e18) - time.monotonic())))
            print(json.dumps(gen.stats.snapshot()), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        gen.stop()
        if scenario.app_faults:
            try:
                set_app_faults(args.app_url, None, args.admin_token)
            except OSError:
                pass
    return 0
