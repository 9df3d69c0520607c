"""Resumable, verified HTTP(S) downloads (stdlib only: urllib, hashlib).

A file is fetched into ``<dest>.part`` beside its final place, resumed with a ``Range`` request
when a previous run was cut off, hashed, and only then renamed to ``dest`` (an atomic rename in one
directory), so the final name never holds a partial or unverified file. A digest mismatch deletes
the partial file. Network failures are retried with a growing pause; each retry resumes where the
last one stopped. Plain ``http://`` is refused except for loopback hosts (tests, a local mirror)
or when the caller allows it explicitly, and the same rule applies to every redirect.

The library reports progress through a callback ``progress(stage, done, total)`` with ``stage`` in
``"download" | "verify" | "copy"`` and ``total`` in bytes (None when unknown): the CLI draws it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import ipaddress
import os
import re
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import VfiError

Progress = Callable[[str, int, "int | None"], None]
Notify = Callable[[str], None]

CHUNK = 1 << 20  # 1 MiB reads: small enough for a smooth progress bar, large enough to be cheap
USER_AGENT = "vfi-download/0.1 (python urllib)"


@dataclass(frozen=True)
class Digest:
    """What a file must be: its sha256 (or, weaker, the first hex digits of it) and its size.

    A known size lets a download fail at the first response of a server that serves another file,
    and makes a prefix-only check harder to fool.
    """

    sha256: str | None = None
    prefix: str | None = None
    size: int | None = None

    def __post_init__(self):
        if not self.sha256 and not self.prefix:
            raise VfiError("refusing to install a file with no sha256 to check it against")

    def matches(self, actual: str) -> bool:
        if self.sha256:
            return actual == self.sha256.lower()
        return actual.startswith(self.prefix.lower())

    def size_error(self, actual: int) -> str | None:
        if self.size is None or actual == self.size:
            return None
        return f"size mismatch: expected {self.size} bytes, got {actual}"

    def describe(self) -> str:
        return self.sha256.lower() if self.sha256 else f"{self.prefix.lower()}... (prefix)"


@dataclass(frozen=True)
class DownloadOptions:
    allow_http: bool = False  # plain http to a non-loopback host
    timeout: float = 20.0  # seconds for the connection and for each read
    retries: int = 3  # extra tries per URL after the first one fails on the network
    retry_wait: float = 1.0  # seconds before the first retry, doubled after each


class _Transient(Exception):
    """A network failure worth retrying (the partial file is kept and resumed)."""


class _Fatal(Exception):
    """A failure of this URL that retrying will not fix (HTTP 404, a bad redirect)."""


def check_url(url: str, allow_http: bool = False) -> None:
    """Refuse anything but https, or http to a loopback host (or anywhere with ``allow_http``)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        if allow_http or _is_loopback(parts.hostname or ""):
            return
        raise VfiError(
            f"refusing plain http URL {url}: use https, or pass --allow-http if you trust the "
            "network path (the sha256 is checked either way)"
        )
    raise VfiError(f"unsupported URL {url!r}: give an https:// URL")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    total = path.stat().st_size
    h = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
            done += len(block)
            if progress:
                progress("verify", done, total)
    return h.hexdigest()


def fetch(
    urls: list[str] | tuple[str, ...],
    dest: Path,
    digest: Digest,
    *,
    options: DownloadOptions = DownloadOptions(),
    progress: Progress | None = None,
    notify: Notify | None = None,
    hint: str = "",
) -> Path:
    """Download the first URL that works into ``dest``, verified against ``digest``.

    ``hint`` is appended to the final failure message (e.g. how to install from a file instead).
    """
    if not urls:
        raise VfiError(f"no URL to download {dest.name} from{_tail(hint)}")
    for url in urls:
        check_url(url, options.allow_http)
    part = _part_path(dest)
    with _cache_lock(dest.parent):
        failures = []
        for url in urls:
            try:
                _fetch_url(url, part, digest.size, options, progress, notify)
                used = url
                break
            except (_Transient, _Fatal) as e:
                failures.append(str(e))
                if notify and url != urls[-1]:
                    notify(f"{e}; trying the next source")
        else:
            kept = ""
            if part.exists() and part.stat().st_size:
                kept = f" ({_mb(part.stat().st_size)} kept; the next run resumes)"
            raise VfiError(
                f"could not download {dest.name}: {'; '.join(failures)}{kept}{_tail(hint)}"
            )
        _verify_and_place(part, dest, digest, progress, source=used)
    return dest


def install_local(src: Path, dest: Path, digest: Digest, progress: Progress | None = None) -> Path:
    """Copy a local file to ``dest`` (via a temporary file beside it) once its digest matches."""
    src = Path(src)
    if not src.is_file():
        raise VfiError(f"file not found: {src}")
    wrong_size = digest.size_error(src.stat().st_size)
    if wrong_size:
        raise VfiError(f"{src} is not the expected file: {wrong_size}; nothing was installed")
    actual = sha256_file(src, progress)
    if not digest.matches(actual):
        raise VfiError(
            f"{src} is not the expected file: sha256 expected {digest.describe()}, got {actual}; "
            "nothing was installed"
        )
    part = _part_path(dest)
    with _cache_lock(dest.parent):
        try:
            _copy_with_progress(src, part, progress)
        except OSError as e:
            part.unlink(missing_ok=True)
            raise _local_error(e, part) from None
        # Hash the copy too: the rename must only ever publish bytes we have checked.
        _verify_and_place(part, dest, digest, progress=None, source=str(src))
    return dest


def prepare_dir(directory: Path) -> None:
    """Create ``directory`` and prove it is writable, or raise one clear line."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".vfi-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise VfiError(
            f"cannot write to the weights cache {directory} ({e.strerror or e}): pass --cache-dir "
            "DIR or set VFI_CACHE to a writable directory"
        ) from None


# ---- one URL, with retries -------------------------------------------------------------------


def _fetch_url(url, part: Path, size, options: DownloadOptions, progress, notify) -> None:
    opener = urllib.request.build_opener(_CheckedRedirects(options.allow_http))
    tries = 1 + max(0, options.retries)
    for attempt in range(tries):
        try:
            _fetch_once(opener, url, part, size, options.timeout, progress)
            return
        except _Transient as e:
            if attempt == tries - 1:
                raise _Transient(f"{e} (gave up after {tries} tries)") from None
            wait = options.retry_wait * 2**attempt
            if notify:
                have = part.stat().st_size if part.exists() else 0
                resume = f", resuming at {_mb(have)}" if have else ""
                notify(f"{e}; retrying in {wait:g} s{resume} (try {attempt + 2}/{tries})")
            time.sleep(wait)


def _fetch_once(opener, url: str, part: Path, size, timeout: float, progress) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:
            return  # the range starts at or past the end: the partial file may be complete
        if e.code in (408, 425, 429) or e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason} from {url}") from None
        raise _Fatal(f"HTTP {e.code} {e.reason} from {url}") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, _Fatal):
            raise e.reason from None
        if isinstance(e.reason, ssl.SSLCertVerificationError):
            raise _Fatal(
                f"TLS certificate check failed for {url}: {e.reason.verify_message}"
            ) from None
        raise _Transient(f"{_reason(e.reason)} ({url})") from None
    except (OSError, http.client.HTTPException) as e:
        raise _Transient(f"{_reason(e)} ({url})") from None

    with response:
        if have and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != have:
                raise _Fatal(f"{url} answered a resume request with the wrong range")
            mode = "ab"
        else:
            # 200: the server ignored the Range header (or there was none): start over.
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise _Fatal(f"{url} serves {total} bytes, expected {size}: another file?")
        with _open_part(part, mode) as f:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Transient(f"connection lost: {_reason(e)} ({url})") from None
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as e:
                    f.close()
                    part.unlink(missing_ok=True)
                    raise _local_error(e, part) from None
                have += len(block)
                if progress:
                    progress("download", have, total)
    if total is not None and have < total:
        raise _Transient(f"connection closed after {_mb(have)} of {_mb(total)} ({url})")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but never to a URL that the http/https rule would refuse."""

    def __init__(self, allow_http: bool):
        self.allow_http = allow_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            check_url(newurl, self.allow_http)
        except VfiError as e:
            # URLError wraps it on the way out of urllib; _fetch_once unwraps it again.
            raise urllib.error.URLError(_Fatal(f"redirect refused: {e}")) from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# ---- helpers -----------------------------------------------------------------------------------


def _verify_and_place(part: Path, dest: Path, digest: Digest, progress, source: str) -> None:
    wrong_size = digest.size_error(part.stat().st_size)
    if wrong_size:
        part.unlink(missing_ok=True)
        raise VfiError(f"{dest.name} from {source}: {wrong_size}; the download was deleted")
    actual = sha256_file(part, progress)
    if not digest.matches(actual):
        part.unlink(missing_ok=True)
        raise VfiError(
            f"sha256 mismatch for {dest.name} from {source}: expected {digest.describe()}, got "
            f"{actual}; the download was deleted (a wrong or corrupted file, or a bad mirror)"
        )
    try:
        os.replace(part, dest)
    except OSError as e:
        raise _local_error(e, dest) from None


def _copy_with_progress(src: Path, dst: Path, progress) -> None:
    total = src.stat().st_size
    done = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(CHUNK):
            fout.write(block)
            done += len(block)
            if progress:
                progress("copy", done, total)
    shutil.copymode(src, dst)


@contextlib.contextmanager
def _cache_lock(directory: Path):
    """Hold an exclusive lock on the cache directory (POSIX), so two runs never share a .part."""
    prepare_dir(directory)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; the sha256 check still guards the file
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VfiError(
                f"another vfi process is installing weights into {directory}; wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _open_part(part: Path, mode: str):
    try:
        return open(part, mode)
    except OSError as e:
        raise _local_error(e, part) from None


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _content_range(value: str) -> tuple[int, int | None]:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value)
    if not m:
        return -1, None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


def _local_error(e: OSError, path: Path) -> VfiError:
    if e.errno == errno.ENOSPC:
        return VfiError(
            f"disk full while writing {path}: free some space or pass --cache-dir on another disk "
            "(the partial file was deleted)"
        )
    return VfiError(f"cannot write {path}: {e.strerror or e}; pass --cache-dir or set VFI_CACHE")


def _reason(e) -> str:
    if isinstance(e, socket.gaierror):
        return "host not found (offline, or a wrong URL?)"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, OSError) and getattr(e, "errno", None) is not None and e.strerror:
        return e.strerror.lower()
    return str(e) or type(e).__name__


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _tail(hint: str) -> str:
    return f"; {hint}" if hint else ""
