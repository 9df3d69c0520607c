"""`vfi download-weights`: list, download, or install from a file the weights of the registry.

All the logic (cache, resumable download, sha256, atomic rename) is in ``engine.weights`` and
``engine.download``; this module parses flags and draws the progress bar and the table.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(
    "download-weights",
    epilog="Weights are cached in $VFI_CACHE or the user cache dir; --cache-dir overrides both.",
)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--all", "all_", is_flag=True, help="Every entry that has a download URL.")
@click.option("--list", "list_", is_flag=True, help="Show every entry, its status and size.")
@click.option("--url", metavar="URL", help="Download from this mirror instead (same sha256 check).")
@click.option(
    "--file",
    "file_",
    metavar="PATH",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Install a local copy of the file after checking its sha256.",
)
@click.option("--force", is_flag=True, help="Download again even if a verified copy is cached.")
@click.option(
    "--cache-dir",
    metavar="DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Use this cache directory (default: $VFI_CACHE or the user cache dir).",
)
@click.option(
    "--allow-http", is_flag=True, help="Permit plain http:// to non-loopback hosts (for --url)."
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Extra tries after a network failure; each resumes the partial download.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="Seconds to wait for the server on each connection and read.",
)
def command(names, all_, list_, url, file_, force, cache_dir, allow_http, retries, timeout):
    """Download, verify and cache weights: NAME is a model (e.g. vfi-b) or an extra file (vgg19)."""
    from engine import weights
    from engine.download import DownloadOptions
    from engine.errors import VfiError

    for name in names:
        weights.get_entry(name)  # unknown names fail first, listing the known ones
    if list_ or not (names or all_):
        if url or file_ or force or all_:
            raise VfiError("--list only shows the entries; drop --all/--url/--file/--force")
        _print_table(names or weights.entry_names(), cache_dir)
        if not names and not list_:
            click.echo("Download one with `vfi download-weights NAME` (or --all).", err=True)
        return
    if all_ and names:
        raise VfiError("give NAMEs or --all, not both")
    if (url or file_) and len(names) != 1:
        raise VfiError("--url and --file apply to exactly one NAME")
    if url and file_:
        raise VfiError("give --url or --file, not both")

    if all_:
        names = [n for n in weights.entry_names() if _downloadable(n)]
        if not names:
            click.echo("Nothing to download: no entry has a download URL.")
            return
    options = DownloadOptions(allow_http=allow_http, timeout=timeout, retries=retries)
    for name in names:
        entry, _ = weights.get_entry(name)
        if entry is not None and entry.bundled and not (url or file_ or force):
            path = weights.verify_bundled(name)
            click.echo(
                f"{name}: bundled with vfi, verified {path} ({_size(entry.size)}, sha256 ok)"
            )
            continue
        if file_:
            path = _with_progress(name, weights.install_weights_file, name, file_, cache=cache_dir)
            click.echo(f"{name}: installed {file_} as {path} (sha256 verified)")
            continue
        before = _identity(weights.entry_path(weights.installable_entry(name), cache_dir))
        path = _with_progress(
            name,
            weights.download_weights,
            name,
            cache=cache_dir,
            url=url,
            force=force,
            options=options,
            notify=_notice,
        )
        verb = "already cached, verified" if _identity(path) == before else "downloaded"
        click.echo(f"{name}: {verb} {path} ({_size(path.stat().st_size)}, sha256 ok)")


def _identity(path: Path):
    """What tells whether a file was replaced: None when absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _downloadable(name: str) -> bool:
    from engine import weights

    entry, _ = weights.get_entry(name)
    return entry is not None and not entry.bundled and bool(entry.urls)


def _with_progress(name: str, work, *args, **kwargs):
    """Run ``work(*args, progress=callback, **kwargs)`` under a Rich bar on stderr.

    No bar is drawn when stderr is not a terminal (logs stay clean)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from vfi_cli.ui import stderr_bar

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with stderr_bar(*columns) as bar:
        tasks = {}

        def progress(stage: str, done: int, total: int | None):
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{name}: {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        return work(*args, progress=progress, **kwargs)


def _notice(message: str) -> None:
    from vfi_cli.ui import print_warning

    print_warning(message)


def _print_table(names, cache_dir) -> None:
    from rich.table import Table

    from engine import weights
    from vfi_cli.ui import console

    table = Table(title=f"weights (cache: {weights.cache_dir(cache_dir)})", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("licence")
    table.add_column("source", overflow="fold")
    for name in names:
        entry, kind = weights.get_entry(name)
        status = weights.entry_status(name, cache_dir)
        if entry is None:
            why = "baseline: needs no weights" if kind == "baseline" else "no trained weights yet"
            table.add_row(name, status, "-", "-", why)
            continue
        if entry.bundled:
            source = "inside the package"
        elif entry.urls:
            source = entry.urls[0]
        else:
            source = "no public URL yet: install with --file PATH"
        size = _size(entry.size) if entry.size else "?"
        table.add_row(name, status, size, entry.licence, source)
    console().print(table)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} B"
