"""Output paths are checked before any work: a file in the way of an output folder is one
`error:` line and exit 1, the file is left as it was and nothing is created (engine/paths.py);
OSErrors no check foresees are one line too (vfi_cli/main.py)."""

from __future__ import annotations

import errno
import os

import click
import pytest
from click.testing import CliRunner
from conftest import tiny_config

from engine.errors import VfiError
from engine.paths import check_creatable
from vfi_cli.main import LazyGroup, cli


def test_check_creatable(tmp_path):
    check_creatable(tmp_path, "x")  # an existing folder
    check_creatable(tmp_path / "a" / "b", "x")  # to be made under a writable folder
    assert not (tmp_path / "a").exists()  # nothing is created
    (tmp_path / "f").write_text("keep")
    for target in (tmp_path / "f", tmp_path / "f" / "sub"):
        with pytest.raises(VfiError, match="is a file, not a folder"):
            check_creatable(target, "the output")
    assert (tmp_path / "f").read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_creatable_without_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(VfiError, match="no permission"):
        check_creatable(locked / "out", "the output")


def _one_line(result, pattern):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0], lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "middlebury", "--path", "{tmp}/nope", "--json", "{tmp}/blocker/r.json"],
        ["train", "prepare", "{tmp}/src", "{tmp}/blocker/corpus"],
        ["train", "export", "{tmp}/x.pkl", "--out", "{tmp}/blocker/x.safetensors"],
        ["train", "average", "{tmp}/blocker/a.pkl", "{tmp}/x.pkl", "{tmp}/y.pkl"],
        ["train", "grow", "{tmp}/blocker/g.pkl", "vfi-s", "--flow_dims", "224,160,96"],
        ["train", "check-triplets", "{tmp}/corpus", "{tmp}/blocker/m.json"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_a_file_in_the_way_of_the_output(tmp_path, args):
    from engine.loading import build_model
    from train import checkpoint

    model = build_model(tiny_config())
    for name in ("x.pkl", "y.pkl"):  # real inputs, so only the output can be at fault
        record = checkpoint.weights_record(model.state_dict(), model.config, {"phase": 1})
        checkpoint.atomic_save(record, tmp_path / name)
    (tmp_path / "src").mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("keep")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(cli, [a.format(tmp=tmp_path) for a in args])
    _one_line(result, "is a file, not a folder")
    assert blocker.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_an_unforeseen_os_error_is_one_line(monkeypatch):
    monkeypatch.setattr(LazyGroup, "get_command", click.Group.get_command)
    monkeypatch.setattr(LazyGroup, "list_commands", click.Group.list_commands)

    def run(exc):
        @click.group(cls=LazyGroup)
        def group():
            pass

        @group.command("boom")
        def boom():
            raise exc

        return CliRunner().invoke(group, ["boom"])

    full = run(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    _one_line(full, "No space left on device")
    gone = run(FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/x/frames"))
    _one_line(gone, "/x/frames")
    bug = run(OSError("no path, no errno"))  # not a path or machine-state error: propagates
    assert bug.exit_code == 1 and isinstance(bug.exception, OSError)


def test_a_refused_prepare_prints_only_its_error(tmp_path):
    """Off a terminal there is no progress bar, so nothing (not even an empty line) precedes
    the error."""
    (tmp_path / "empty").mkdir()
    args = ["train", "prepare", str(tmp_path / "empty"), str(tmp_path / "out")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and result.stderr.startswith("error: no video files"), repr(
        result.stderr
    )
    assert not (tmp_path / "out").exists()
