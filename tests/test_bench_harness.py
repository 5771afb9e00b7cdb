"""The bench harness end to end on tiny files, plus its server, pacing, checks and timing."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench import run
from bench.corpus import Corpus, ensure_corpus, sha256_of, verify_download
from bench.measure import gnu_time_available, run_measured
from bench.pacing import TokenBucket, parse_rate
from bench.server import ServerProcess
from bench.tools import DIRECT, Ours, Route, Tool

HAVE_ARIA2C = shutil.which("aria2c") is not None
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus:
    return ensure_corpus(tmp_path / "served", count=2, size=300_000)


@pytest.fixture(params=[None, "50MB"], ids=["sendfile", "paced"])
def server(request: pytest.FixtureRequest, corpus: Corpus) -> Iterator[ServerProcess]:
    with ServerProcess(corpus.directory, request.param) as started:
        yield started


def _get(
    server: ServerProcess, path: str, headers: dict[str, str], method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    address = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


@pytest.mark.slow
def test_harness_runs_every_tool_and_writes_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = ["curl", "plain", *(["aria2c"] if HAVE_ARIA2C else [])]
    results = tmp_path / "results"
    argv = ["--files", "2", "--size", "0.5", "--repeat", "1", "--only", ",".join(tools)]
    argv += ["--served-dir", str(tmp_path / "served"), "--results-dir", str(results)]

    assert run.main(argv) == 0

    document = json.loads(next(results.glob("bench-*.json")).read_text())
    runs = document["runs"]
    # HTTPS (c, d) and through the proxy (e) need nginx; the harness skips them without.
    profiles = "abcde" if shutil.which("nginx") else "ab"
    assert {(r["profile"], r["tool"]) for r in runs} == {(p, t) for p in profiles for t in tools}
    assert all(r["ok"] and r["bytes"] == 1_000_000 and r["wall_s"] > 0 for r in runs)
    assert {r["processes"] for r in runs if r["tool"] == "curl"} == {2}
    curl_rows = [row for row in document["summary"] if row["tool"] == "curl"]
    assert all(row["wall_ratio"]["curl"] == pytest.approx(1.0) for row in curl_rows)
    table = capsys.readouterr().out
    assert table.count("| plain |") == len(profiles) and "wall ÷ curl" in table
    # The targets follow the table; ours did not run, so none of them can pass.
    assert "| HTTPS unlimited: wall ÷ ten curls | 1.5 | n/a | not run |" in table
    assert {t["verdict"] for t in document["targets"]} == {"not run"}
    assert document["table_markdown"] == table.strip()


def test_missing_tool_is_skipped_with_a_notice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--only", "ours", "--ours-exe", str(tmp_path / "nope"), "--files", "1", "--size", "1"]

    assert run.main(argv) == 2

    assert "skipping ours" in capsys.readouterr().err
    assert not (tmp_path / "served").exists()


def test_bad_options_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run.main(["--only", "wget"])
    assert exit_info.value.code == 2
    assert "pick from aria2c, curl, ours, plain" in capsys.readouterr().err


def test_ours_is_skipped_until_its_executable_exists(tmp_path: Path) -> None:
    reason = Ours(tmp_path / "civitai-tui").skip_reason()
    assert reason is not None and "does not exist" in reason


@pytest.mark.slow
@needs_curl
def test_a_broken_download_is_reported_not_timed(tmp_path: Path, corpus: Corpus) -> None:
    class Truncating(Tool):
        name = "truncating"

        def commands(self, urls: list[str], dest: Path, route: Route = DIRECT) -> list[list[str]]:
            return [
                ["curl", "-sS", "-r", "0-99", "-o", str(dest / u.rsplit("/")[-1]), u] for u in urls
            ]

    session = run.Session(corpus=corpus, work=tmp_path / "work", timeout=30, digests={})
    with ServerProcess(corpus.directory, None) as server:
        record = run.run_once(session, server, Truncating(), "a", 0)

    assert not record.ok
    assert record.problems[0] == "bench-000.dat: 100 bytes, expected 300000"
    assert not (tmp_path / "work" / "dest").exists()


@pytest.mark.slow
def test_server_answers_ranges_strictly(server: ServerProcess, corpus: Corpus) -> None:
    path = "/files/bench-001.dat"
    data = corpus.path("bench-001.dat").read_bytes()

    partial, body = _get(server, path, {"Range": "bytes=10-19"})
    assert (partial.status, body) == (206, data[10:20])
    assert partial.headers["Content-Range"] == "bytes 10-19/300000"
    assert partial.headers["Accept-Ranges"] == "bytes" and partial.headers["ETag"]

    tail, body = _get(server, path, {"Range": "bytes=-5"})
    assert (tail.status, body) == (206, data[-5:])

    beyond, _ = _get(server, path, {"Range": "bytes=300000-"})
    assert beyond.status == 416

    whole, body = _get(server, path, {})
    assert (whole.status, sha256_of(corpus.path("bench-001.dat"))) == (
        200,
        hashlib.sha256(body).hexdigest(),
    )

    head, body = _get(server, path, {}, method="HEAD")
    assert (head.status, head.headers["Content-Length"], body) == (200, "300000", b"")

    missing, _ = _get(server, "/files/../served", {})
    assert missing.status == 404


@pytest.mark.slow
def test_paced_server_keeps_connections_and_honours_if_range(corpus: Corpus) -> None:
    data = corpus.path("bench-000.dat").read_bytes()
    with ServerProcess(corpus.directory, "50MB") as server:
        address = urlsplit(server.base_url)
        conn = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
        conn.request("GET", "/files/bench-000.dat", headers={"Range": "bytes=0-99"})
        first = conn.getresponse()
        etag, first_body = first.headers["ETag"], first.read()
        conn.request(
            "GET", "/files/bench-000.dat", headers={"Range": "bytes=100-199", "If-Range": etag}
        )
        second = conn.getresponse()
        assert (second.status, second.read()) == (206, data[100:200])
        conn.request(
            "GET", "/files/bench-000.dat", headers={"Range": "bytes=5-9", "If-Range": '"stale"'}
        )
        stale = conn.getresponse()
        assert (stale.status, stale.read()) == (200, data)
        conn.close()
    assert first_body == data[:100]


def test_token_bucket_spreads_writes_at_the_rate() -> None:
    bucket = TokenBucket(rate=1000, capacity=100)
    now = 0.0
    for _ in range(50):
        now += bucket.reserve(100, now)
    # the first 100 bytes ride the burst, the other 4900 go at 1000 bytes/s
    assert now == pytest.approx(4.9)
    assert bucket.reserve(100, now + 10) == 0.0  # idle time refills, but only up to capacity
    assert bucket.reserve(100, now + 10) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20MB", 20_000_000), ("20MB/s", 20_000_000), ("512KiB", 524_288), ("1.5gb", 1_500_000_000)],
)
def test_parse_rate(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "20 parsecs", "0MB", ""])
def test_parse_rate_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_corpus_is_reused_and_checked(tmp_path: Path, corpus: Corpus) -> None:
    before = corpus.path("bench-000.dat").stat().st_mtime_ns
    again = ensure_corpus(tmp_path / "served", count=2, size=300_000)
    assert again == corpus and again.path("bench-000.dat").stat().st_mtime_ns == before

    dest = tmp_path / "dest"
    (dest / "nested").mkdir(parents=True)
    shutil.copy(corpus.path("bench-000.dat"), dest / "nested")
    shutil.copy(corpus.path("bench-001.dat"), dest)
    good = sha256_of(corpus.path("bench-001.dat"))
    assert verify_download(corpus, dest, "bench-001.dat", good) == []

    with (dest / "bench-001.dat").open("r+b") as copy:
        copy.write(b"\0")
    assert verify_download(corpus, dest, "bench-001.dat", good) == [
        "bench-001.dat: SHA256 differs from the served file"
    ]
    (dest / "nested" / "bench-000.dat").unlink()
    assert verify_download(corpus, dest, "bench-001.dat", good) == ["bench-000.dat: missing"]


def test_measured_run_reports_exit_codes_and_kills_on_timeout(tmp_path: Path) -> None:
    failing = run_measured(
        [[sys.executable, "-c", "raise SystemExit(3)"]], log_dir=tmp_path / "a", timeout=30
    )
    assert failing.exit_codes == (3,) and not failing.timed_out

    hung = run_measured([["sleep", "30"], ["true"]], log_dir=tmp_path / "b", timeout=0.5)
    assert hung.timed_out and hung.exit_codes[0] == -9 and hung.exit_codes[1] == 0
    assert hung.wall_s < 10


@pytest.mark.skipif(not gnu_time_available(), reason="GNU time is not installed")
def test_peak_rss_is_the_clients_own(tmp_path: Path) -> None:
    grow = "b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096])"
    cost = run_measured([[sys.executable, "-c", grow], ["true"]], log_dir=tmp_path, timeout=30)
    big, small = (p.max_rss_mib for p in cost.processes)
    assert big is not None and big >= 80
    assert small is not None and small < 8  # not this pytest process's RSS
    assert cost.rss_sum_mib == pytest.approx(big + small)
