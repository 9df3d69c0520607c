"""Downloads against a local HTTP server (stdlib http.server on 127.0.0.1, started here).

The server serves byte strings from a dict, honours ``Range: bytes=N-``, and can cut a response
short, ignore ranges, or redirect, so every network path of ``engine.download`` runs offline.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from engine import download, weights
from engine.errors import VfiError
from engine.registry import EXTRA_WEIGHTS, WeightsEntry
from vfi_cli.main import cli

PAYLOAD = os.urandom(300_000) + b"vfi test weights"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    """What the handler serves and what it saw."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}  # path -> bytes sent before closing (first GET only)
        self.ignore_range = False
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.url = ""

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url + path


def _handler(state: Server):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            if self.path in state.redirects:
                self.send_response(302)
                self.send_header("Location", state.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.cut_once.pop(self.path, None)
            self.wfile.write(body if cut is None else body[:cut])
            self.wfile.flush()
            self.close_connection = True

    return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("VFI_CACHE", str(d))
    return d


def _register(monkeypatch, url=None, sha256=SHA, prefix=None, urls=None):
    entry = WeightsEntry(
        file="testw.bin",
        sha256=sha256,
        sha256_prefix=prefix,
        size=len(PAYLOAD),
        licence="test",
        urls=tuple(urls) if urls is not None else ((url,) if url else ()),
    )
    monkeypatch.setitem(EXTRA_WEIGHTS, "testw", entry)
    return entry


def _vfi(*args):
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def _listing(d):
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on exit: nothing listens there


def test_full_download_then_cached(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    r = _vfi("download-weights", "testw")
    assert r.exit_code == 0, r.output
    assert "downloaded" in r.stdout
    assert (cache / "testw.bin").read_bytes() == PAYLOAD
    assert _listing(cache) == ["testw.bin"]  # no .part left over
    assert weights.extra_weights_path("testw") == cache / "testw.bin"

    n = len(server.requests)
    r = _vfi("download-weights", "testw")
    assert r.exit_code == 0 and "already cached" in r.stdout
    assert len(server.requests) == n  # verified locally, not fetched again

    r = _vfi("download-weights", "testw", "--force")
    assert r.exit_code == 0 and "downloaded" in r.stdout
    assert len(server.requests) == n + 1


def test_resume_after_truncated_transfer(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    cut = 120_000
    server.cut_once["/w.bin"] = cut
    r = _vfi("download-weights", "testw", "--retries", "0")
    assert r.exit_code == 1
    assert "next run resumes" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert _listing(cache) == ["testw.bin.part"]  # never a partial file under the final name
    assert (cache / "testw.bin.part").stat().st_size == cut

    r = _vfi("download-weights", "testw", "--retries", "0")
    assert r.exit_code == 0, r.output
    assert server.requests[-1] == ("/w.bin", f"bytes={cut}-")
    assert (cache / "testw.bin").read_bytes() == PAYLOAD
    assert _listing(cache) == ["testw.bin"]


def test_retry_resumes_within_one_run(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    server.cut_once["/w.bin"] = 50_000
    notes = []
    opts = download.DownloadOptions(retries=2, retry_wait=0)
    path = weights.download_weights("testw", options=opts, notify=notes.append)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [("/w.bin", None), ("/w.bin", "bytes=50000-")]
    assert "resuming at" in notes[0]


def test_server_ignoring_range_restarts_cleanly(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    cache.mkdir()
    (cache / "testw.bin.part").write_bytes(PAYLOAD[:1000])
    server.ignore_range = True  # answers 200 with the whole file: we must not append it
    path = weights.download_weights("testw")
    assert path.read_bytes() == PAYLOAD


def test_sha256_mismatch_leaves_nothing(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD[:-1] + b"X"))
    r = _vfi("download-weights", "testw")
    assert r.exit_code == 1
    actual = hashlib.sha256(PAYLOAD[:-1] + b"X").hexdigest()
    assert SHA in r.stderr and actual in r.stderr and "mismatch" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert _listing(cache) == []


def test_url_overrides_source_but_not_hash(server, cache, monkeypatch):
    _register(monkeypatch, server.url + "/gone.bin")
    # same size, other bytes (the first byte flipped: PAYLOAD is random, so a fixed byte could
    # equal it, one run in 256)
    bad = server.add("/bad.bin", bytes([PAYLOAD[0] ^ 0xFF]) + PAYLOAD[1:])
    r = _vfi("download-weights", "testw", "--url", bad)
    assert r.exit_code == 1 and "sha256 mismatch" in r.stderr and SHA in r.stderr
    good = server.add("/mirror.bin", PAYLOAD)
    r = _vfi("download-weights", "testw", "--url", good)
    assert r.exit_code == 0, r.output
    assert (cache / "testw.bin").read_bytes() == PAYLOAD
    assert [p for p, _ in server.requests] == ["/bad.bin", "/mirror.bin"]


def test_wrong_size_fails_before_downloading(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD + b"extra"))
    with pytest.raises(VfiError, match=f"serves {len(PAYLOAD) + 5} bytes, expected {len(PAYLOAD)}"):
        weights.download_weights("testw")
    assert _listing(cache) == []


def test_cache_dir_flag_wins_over_env(server, cache, tmp_path, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    other = tmp_path / "flag-cache"
    r = _vfi("download-weights", "testw", "--cache-dir", str(other))
    assert r.exit_code == 0, r.output
    assert _listing(other) == ["testw.bin"] and _listing(cache) == []


def test_404_is_not_retried(server, cache, monkeypatch):
    _register(monkeypatch, server.url + "/missing.bin")
    r = _vfi("download-weights", "testw", "--retries", "3")
    assert r.exit_code == 1
    assert "HTTP 404" in r.stderr and "--file PATH" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert len(server.requests) == 1
    assert _listing(cache) == []


def test_falls_back_to_the_next_url(server, cache, monkeypatch):
    good = server.add("/w.bin", PAYLOAD)
    _register(monkeypatch, urls=[server.url + "/missing.bin", good])
    assert weights.download_weights("testw").read_bytes() == PAYLOAD


def test_connection_refused(cache, monkeypatch):
    _register(monkeypatch, f"http://127.0.0.1:{_refused_port()}/w.bin")
    r = _vfi("download-weights", "testw", "--retries", "0")
    assert r.exit_code == 1
    assert "connection refused" in r.stderr and "gave up after 1 tries" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    with pytest.raises(VfiError, match="gave up after 3 tries"):
        weights.download_weights("testw", options=download.DownloadOptions(retries=2, retry_wait=0))
    assert not (cache / "testw.bin").exists()


def test_redirects_followed_but_checked(server, cache, monkeypatch):
    server.add("/real.bin", PAYLOAD)
    server.redirects["/old.bin"] = server.url + "/real.bin"
    server.redirects["/evil.bin"] = "http://example.com/w.bin"  # plain http off the machine
    _register(monkeypatch, server.url + "/old.bin")
    assert weights.download_weights("testw").read_bytes() == PAYLOAD
    (cache / "testw.bin").unlink()
    _register(monkeypatch, server.url + "/evil.bin")
    with pytest.raises(VfiError, match="redirect refused"):
        weights.download_weights("testw")
    assert _listing(cache) == []


def test_plain_http_only_for_loopback():
    download.check_url("https://example.com/w.bin")
    download.check_url("http://127.0.0.1:8000/w.bin")
    download.check_url("http://[::1]/w.bin")
    download.check_url("http://localhost/w.bin")
    download.check_url("http://example.com/w.bin", allow_http=True)
    with pytest.raises(VfiError, match="--allow-http"):
        download.check_url("http://example.com/w.bin")
    with pytest.raises(VfiError, match="unsupported URL"):
        download.check_url("file:///etc/passwd", allow_http=True)


def test_cli_refuses_plain_http_mirror(cache, monkeypatch):
    _register(monkeypatch, "https://example.com/w.bin")
    r = _vfi("download-weights", "testw", "--url", "http://example.com/w.bin")
    assert r.exit_code == 1 and "--allow-http" in r.stderr
    assert _listing(cache) == []


def test_file_install(tmp_path, cache, monkeypatch):
    _register(monkeypatch, "https://example.com/w.bin")
    src = tmp_path / "downloaded-elsewhere.bin"
    src.write_bytes(PAYLOAD)
    r = _vfi("download-weights", "testw", "--file", str(src))
    assert r.exit_code == 0, r.output
    assert (cache / "testw.bin").read_bytes() == PAYLOAD
    assert src.read_bytes() == PAYLOAD and _listing(cache) == ["testw.bin"]

    (cache / "testw.bin").unlink()
    src.write_bytes(PAYLOAD[:-1] + b"?")
    r = _vfi("download-weights", "testw", "--file", str(src))
    assert r.exit_code == 1 and SHA in r.stderr and "nothing was installed" in r.stderr
    src.write_bytes(b"not the weights")
    r = _vfi("download-weights", "testw", "--file", str(src))
    assert r.exit_code == 1 and "size mismatch" in r.stderr
    assert _listing(cache) == []

    r = _vfi("download-weights", "testw", "--file", str(tmp_path / "nope.bin"))
    assert r.exit_code == 1 and "file not found" in r.stderr


def test_prefix_only_entry(server, cache, monkeypatch):
    url = server.add("/w.bin", PAYLOAD)
    _register(monkeypatch, url, sha256=None, prefix=SHA[:8])
    assert weights.download_weights("testw").read_bytes() == PAYLOAD
    (cache / "testw.bin").unlink()
    wrong = format((int(SHA[:8], 16) + 1) % 16**8, "08x")
    _register(monkeypatch, url, sha256=None, prefix=wrong)
    with pytest.raises(VfiError, match=f"expected {wrong}"):
        weights.download_weights("testw")
    assert _listing(cache) == []


def test_corrupt_cached_file_is_replaced(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    cache.mkdir()
    (cache / "testw.bin").write_bytes(b"bit rot")
    notes = []
    assert weights.download_weights("testw", notify=notes.append).read_bytes() == PAYLOAD
    assert "does not match" in notes[0]


def test_unwritable_cache_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("VFI_CACHE", str(blocker / "cache"))  # a directory inside a file
    _register(monkeypatch, "https://example.com/w.bin")
    r = _vfi("download-weights", "testw")
    assert r.exit_code == 1
    assert "cannot write to the weights cache" in r.stderr and "--cache-dir" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_disk_full(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))

    class FullDisk:
        def __init__(self, path, mode):
            self.f = open(path, mode)  # noqa: SIM115 (closed by __exit__, like a real file)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def close(self):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "_open_part", FullDisk)
    r = _vfi("download-weights", "testw")
    assert r.exit_code == 1 and "disk full" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert _listing(cache) == []


def test_cli_arguments(cache, monkeypatch):
    r = _vfi("download-weights", "no-such-model")
    assert r.exit_code == 1
    assert "unknown weights 'no-such-model'" in r.stderr
    for name in ("vfi-s", "vfi-b", "blend", "vgg19"):
        assert name in r.stderr
    r = _vfi("download-weights", "vgg19", "vfi-b", "--url", "https://example.com/x")
    assert r.exit_code == 1 and "exactly one NAME" in r.stderr
    r = _vfi("download-weights", "vfi-b")
    assert r.exit_code == 1 and "no trained weights" in r.stderr
    r = _vfi("download-weights", "vfi-s")  # bundled: verified in place, nothing to fetch
    assert r.exit_code == 0 and "bundled with vfi, verified" in r.stdout
    r = _vfi("download-weights", "vfi-s", "--url", "https://example.com/x")
    assert r.exit_code == 1 and "ships inside the package" in r.stderr
    r = _vfi("download-weights", "blend")
    assert r.exit_code == 1 and "baseline" in r.stderr


def test_list_shows_status(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    r = _vfi("download-weights", "--list")
    assert r.exit_code == 0
    row = next(line for line in r.stdout.splitlines() if "testw" in line)
    assert "missing" in row and "0.3 MB" in row
    assert "vgg19" in r.stdout and "574.7 MB" in r.stdout
    _vfi("download-weights", "testw")
    r = _vfi("download-weights", "--list", "testw")
    assert "cached" in r.stdout


def test_all_downloads_every_entry_with_a_url(server, cache, monkeypatch):
    _register(monkeypatch, server.add("/w.bin", PAYLOAD))
    monkeypatch.delitem(EXTRA_WEIGHTS, "vgg19")  # 575 MB: not in a unit test
    r = _vfi("download-weights", "--all")
    assert r.exit_code == 0, r.output
    assert (cache / "testw.bin").read_bytes() == PAYLOAD


def test_timeout_is_retried_then_reported(cache, monkeypatch):
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        _register(monkeypatch, f"http://127.0.0.1:{s.getsockname()[1]}/w.bin")
        opts = download.DownloadOptions(timeout=0.2, retries=1, retry_wait=0)
        with pytest.raises(VfiError, match=r"timed out .*gave up after 2 tries"):
            weights.download_weights("testw", options=opts)
    assert not (cache / "testw.bin").exists()


def test_offline_reason_is_plain():
    assert "offline" in download._reason(socket.gaierror(-2, "Name or service not known"))


def test_second_process_is_told_to_wait(tmp_path, cache, monkeypatch):
    _register(monkeypatch, "https://example.com/w.bin")
    src = tmp_path / "w.bin"
    src.write_bytes(PAYLOAD)
    with download._cache_lock(cache), pytest.raises(VfiError, match="another vfi process"):
        weights.install_weights_file("testw", src)
    weights.install_weights_file("testw", src)  # lock released: works
    assert (cache / "testw.bin").read_bytes() == PAYLOAD
