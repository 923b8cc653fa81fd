"""The HTML reports as a browser draws them: headless Chromium over a real Prometheus.

A usage-pattern and a trend report of the backfilled weeks (tests/support/report_data.py) are
written as self-contained HTML, rendered by `chromium --headless` into a 1200x2000 screenshot,
and the PNG is decoded here (zlib and the PNG row filters, no imaging library): it must be a
full-size image with a substantial share of non-blank pixels, and the colours of the series
and of the threshold lines must be on it, so an SVG that failed to draw fails the test. The SVG
structure is checked on the same page: threshold lines carrying the config values, axis labels
with units, nothing outside the page (no external resource).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.report_data import A_AT, B_AT, serve_backfill

from deletion_monitor.common.config import load_config
from deletion_monitor.common.promapi import PrometheusClient
from deletion_monitor.reports import render, report

WIDTH, HEIGHT = 1200, 2000


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    return load_config(env={})


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory, cfg: dict[str, Any]) -> Iterator[str]:
    with serve_backfill(tmp_path_factory.mktemp("prom"), cfg) as url:
        yield url


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        pytest.fail("chromium is missing: run scripts/ensure-system-deps.sh")
    return binary


def screenshot(page: Path, png: Path) -> None:
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={png.parent / 'chromium-profile'}",
            f"--screenshot={png}",
            f"--window-size={WIDTH},{HEIGHT}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.exists(), done.stderr[-2000:]


def decode_png(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB or RGBA PNG, rows unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def pixel_stats(png: Path, colours: dict[str, tuple[int, int, int]]) -> dict[str, float]:
    """Share of non-blank (not near-white) pixels, and how many pixels are near each colour."""
    width, height, bpp, rows = decode_png(png.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    counts = dict.fromkeys(colours, 0)
    non_blank = 0
    for row in rows:
        for i in range(0, len(row), bpp):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if r < 245 or g < 245 or b < 245:
                non_blank += 1
                for name, (cr, cg, cb) in colours.items():
                    if abs(r - cr) < 24 and abs(g - cg) < 24 and abs(b - cb) < 24:
                        counts[name] += 1
    return {"non_blank": non_blank / (width * height), **counts}


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "at"), [("usage-patterns", A_AT), ("trends", B_AT)])
def test_report_page_renders_in_chromium(
    prom: str, cfg: dict[str, Any], tmp_path: Path, kind: str, at: int
) -> None:
    rep = report.build_report(PrometheusClient(prom), cfg, kind, "7d", at, with_plots=True)
    text = render.render(rep, "html")
    # Self-contained: no script, no stylesheet or image fetched from anywhere.
    assert not re.search(r"<script|<link|<img|src=|href=", text)
    # Threshold lines with the config's values, axes labelled with units.
    p95 = cfg["latency"]["p95Target"]
    assert f'<line class="threshold" data-value="{p95:g}"' in text
    assert "p95 target (latency.p95Target): 5 s" in text
    if kind == "trends":
        warning = cfg["errorRate"]["warning"] * 100
        assert f'<line class="threshold" data-value="{warning:g}"' in text
        assert "error rate (%)</text>" in text and "24 h ending (UTC)</text>" in text
        assert text.count('data-name="previous 7d"') == 3
    else:
        assert "deletion time (s)</text>" in text and "hour of day (UTC)" in text
    page = tmp_path / f"{kind}.html"
    page.write_text(text)
    png = tmp_path / f"{kind}.png"
    screenshot(page, png)
    size = png.stat().st_size
    assert 20_000 < size < 5_000_000, size  # a drawn page, not an empty or a broken one
    stats = pixel_stats(
        png,
        {
            "series": hex_rgb(render._COLOURS[0]),
            "threshold": hex_rgb(render._THRESHOLD_COLOUR),
        },
    )
    # Text, tables and three charts: a substantial share of the page is not blank...
    assert stats["non_blank"] > 0.04, stats
    # ...and the charts are drawn: the first series colour and the red threshold lines.
    assert stats["series"] > 500 and stats["threshold"] > 60, stats
