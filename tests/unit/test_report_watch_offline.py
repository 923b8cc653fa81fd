"""`deletion-monitor report` and `watch` without a Prometheus: bad arguments, an unreachable
server, a silent one, watch's interval and window from the environment, and report --output
errors (a missing directory, --mkdir, unwritable paths). Nothing listens on
the ports used here (the silent server is a socket of the test itself)."""

from __future__ import annotations

import io
import socket
from pathlib import Path

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


# --------------------------------------------------------------------------------------------
# --output: where asked, or a clear error (issue 17). Checked before any query: nothing listens
# on the Prometheus port, so a check that ran after the queries would say "unreachable".


def _one_line(err: str) -> str:
    err = err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_missing_output_directory_is_an_error_unless_mkdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    target = tmp_path / "nonexistent" / "dir" / "r.html"
    argv = ["health", "--prometheus", dead, "--format", "html", "--output", str(target)]
    assert report.run(parse(report, argv)) == 2
    err = _one_line(capsys.readouterr().err)
    assert err == (
        f"deletion-monitor report: --output: directory {target.parent} does not exist "
        "(pass --mkdir to create it)"
    )
    assert not target.parent.exists()  # nothing created behind the user's back
    # --mkdir creates it; the report then fails on the unreachable Prometheus, not the path.
    assert report.run(parse(report, [*argv, "--mkdir"])) == 2
    assert target.parent.is_dir() and not target.exists()
    assert "unreachable" in _one_line(capsys.readouterr().err)


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for output, says in (
        (a_file / "r.html", f"--output: {a_file} is not a directory"),
        (tmp_path, f"--output: {tmp_path} is a directory"),
    ):
        argv = ["health", "--prometheus", dead, "--output", str(output), "--mkdir"]
        assert report.run(parse(report, argv)) == 2
        assert _one_line(capsys.readouterr().err) == f"deletion-monitor report: {says}"
    # A directory the kernel refuses to write in, even as root: the write fails in one line
    # and leaves no temporary file behind.
    problem = report.write_output(Path("/sys/deletion-report.html"), "text")
    assert problem == "--output: cannot write /sys/deletion-report.html: Permission denied"
    # A file written whole: the temporary name is gone after the rename.
    good = tmp_path / "ok" / "r.md"
    assert report.check_output(good, mkdir=True) is None
    assert report.write_output(good, "# report\n") is None
    assert good.read_text() == "# report\n" and sorted(p.name for p in good.parent.iterdir()) == [
        "r.md"
    ]
