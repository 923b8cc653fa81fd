"""`deletion-monitor report` and `watch` without a Prometheus: bad arguments, an unreachable
server, a silent one, and watch's interval and window from the environment. Nothing listens on
the ports used here (the silent server is a socket of the test itself)."""

from __future__ import annotations

import io
import socket

import pytest
from support.reports import parse, run_watch

from deletion_monitor.common.promapi import PrometheusClient, PrometheusError
from deletion_monitor.reports import report, watch
from deletion_monitor_demo.services import free_port


def test_bad_arguments_and_unreachable_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert report.run(parse(report, ["health", "--prometheus", dead, "--at", "0"])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unreachable" in err and dead in err
    assert report.run(parse(report, ["health", "--range", "7 days", "--prometheus", dead])) == 2
    assert "--range" in capsys.readouterr().err
    with pytest.raises(PrometheusError, match="unreachable"):
        PrometheusClient(dead, timeout=2).query("up")


def test_silent_server_times_out() -> None:
    with socket.socket() as srv:  # accepts connections (backlog) but never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}"
        with pytest.raises(PrometheusError, match=r"unreachable: no answer within 0.5s"):
            PrometheusClient(url, timeout=0.5).query("up")


def test_watch_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    code, [snap] = run_watch(["--once", "--prometheus", dead])
    assert code == 2 and snap["status"] == "unreachable"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable" in err and dead in err


def test_watch_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECK_INTERVAL", "30")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        watch.run(
            parse(watch, ["--prometheus", f"http://127.0.0.1:{free_port()}"]),
            out=io.StringIO(),
            sleep=sleep,
        )
    assert sleeps == [30]
    # The demo's compressed time: "the last hour" shrinks with the rendered rules.
    monkeypatch.setenv("TIME_COMPRESSION", "60")
    _, [snap] = run_watch(["--once", "--prometheus", f"http://127.0.0.1:{free_port()}"])
    assert snap["window"] == "1m"
    assert watch.run(parse(watch, ["--once", "--at", "yesterday"]), out=io.StringIO()) == 2
    monkeypatch.setenv("ERROR_RATE_THRESHOLD", "abc")
    assert watch.run(parse(watch, ["--once"]), out=io.StringIO()) == 2
