"""`vfi train` on the command line: bad input is one line and exit 1, export, instant import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config
from test_train_helpers import make_vimeo, tiny_model_json

from vfi_cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(args):
    return CliRunner().invoke(cli, ["train", *args])


def _one_error_line(result, pattern: str, alone: bool = True):
    """Exit 1 and one `error:` line (the only stderr line unless training had started)."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert len(lines) == 1 or not alone, result.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("source", ["export", "vfi-s"])
def test_a_run_starts_from_an_export_or_a_registered_model(tmp_path, source):
    """`--resume` also takes a .safetensors export or a model name (vfi-s: fine-tune the bundled
    weights): the run trains that architecture from those weights."""
    from conftest import trained_like

    from engine import load_model, weights

    if source == "export":
        model = trained_like(tiny_config())
        source = str(tmp_path / "a.safetensors")
        weights.save_weights_file(model.state_dict(), model.config, Path(source))
    start = load_model(source).state_dict()
    vimeo = make_vimeo(tmp_path / "v", n_train=2, n_test=1)
    args = ["--exp_name", "ft", "--resume", source, "--crop", "32", "--workdir", str(tmp_path)]
    args += ["--device", "cpu", "--data_path", str(vimeo), "--num_workers", "0"]
    args += ["--batch_size", "1", "--epochs", "1", "--max_iters_per_epoch", "1", "--lr", "1e-9"]
    result = _run(args)
    assert result.exit_code == 0, result.output
    assert f"from {source}" in (tmp_path / "log" / "train_ft.log").read_text()
    trained = torch.load(tmp_path / "ckpt" / "ft.pkl", weights_only=True)["model"]
    assert trained.keys() == start.keys()
    for k, v in start.items():  # one step at lr 1e-9 moves no weight by more than ~1e-9
        torch.testing.assert_close(trained[k].float(), v.float(), atol=1e-6, rtol=0)


def test_bad_inputs_are_one_line(tmp_path):
    base = ["--exp_name", "x", "--workdir", str(tmp_path), "--device", "cpu"]
    _one_error_line(_run([*base, "--data_path", str(tmp_path / "nope")]), "Vimeo90K not found")
    _one_error_line(_run(base), "no training data")
    _one_error_line(_run([*base, "--phase", "2", "--data_path", "d"]), "--resume EXP")
    _one_error_line(_run([*base, "--data_path", "d", "--mixed_ratio", "2-1"]), "--mixed_ratio")
    _one_error_line(
        _run([*base, "--train_data", "c", "--train_packs", "0,x"]), "--train_packs takes"
    )
    _one_error_line(
        _run([*base, "--data_path", "d", "--max_iters_per_epoch", "-3"]), "cannot be negative"
    )
    vimeo = make_vimeo(tmp_path / "v", n_train=1, n_test=1)
    _one_error_line(
        _run([*base, "--data_path", str(vimeo), "--phase", "2", "--resume", "p1"]),
        "no best checkpoint",
    )
    _one_error_line(
        _run([*base, "--data_path", str(vimeo), "--phase", "2", "--resume", "vfi-q"]),
        "no such weights file and no such model",
    )
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "x.pkl").write_bytes(b"\0" * 64)
    _one_error_line(_run([*base, "--data_path", str(vimeo)]), "is corrupt")
    assert (tmp_path / "ckpt" / "x.pkl").read_bytes() == b"\0" * 64
    assert not (tmp_path / "log").exists()  # nothing half-written
    _one_error_line(_run(["export", "nope", "--workdir", str(tmp_path)]), "no checkpoint")
    # An unreadable image met by a DataLoader worker process: still one line, naming the file.
    broken = make_vimeo(tmp_path / "broken", n_train=2, n_test=1)
    for f in (broken / "sequences").rglob("im2.png"):
        f.write_bytes(b"junk")
    model = tiny_model_json(tmp_path / "tiny.json")
    args = ["--exp_name", "b", "--workdir", str(tmp_path / "b"), "--device", "cpu", "--crop", "32"]
    args += ["--data_path", str(broken), "--model", str(model), "--num_workers", "1"]
    _one_error_line(_run(args), "cannot read image", alone=False)
    assert not (tmp_path / "b" / "ckpt").exists()
    missing = _run(["--data_path", "d"])
    assert missing.exit_code == 2 and "--exp_name is required" in missing.output


def test_an_unwritable_workdir_is_one_line(tmp_path):
    """A --workdir whose log/ or ckpt/ cannot be made fails before the data are read, and the
    file in the way is left as it was."""
    vimeo = make_vimeo(tmp_path / "v", n_train=1, n_test=1)
    base = ["--exp_name", "x", "--device", "cpu", "--data_path", str(vimeo)]
    blocker = tmp_path / "w" / "log"
    blocker.parent.mkdir()
    blocker.write_text("notes")
    _one_error_line(_run([*base, "--workdir", str(tmp_path / "w")]), "is a file")
    assert blocker.read_text() == "notes" and not (tmp_path / "w" / "ckpt").exists()
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    _one_error_line(_run([*base, "--workdir", str(plain / "sub")]), "(--workdir)")


def test_export_command(tmp_path):
    from engine import load_model
    from engine.loading import build_model
    from train import checkpoint

    torch.manual_seed(0)
    model = build_model(tiny_config(feature_warp=True))
    paths = checkpoint.paths_for(tmp_path / "ckpt", "e")
    checkpoint.save_best(paths, model.state_dict(), model.config, {"step": 3, "psnr": 30.0})
    result = _run(["export", "e", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    dest = Path(result.stdout.strip())
    assert dest == tmp_path / "export" / "e.safetensors" and dest.with_suffix(".json").is_file()
    loaded = load_model(str(dest))
    assert loaded.config == model.config
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x, x.flip(-1), 0.5), model.eval()(x, x.flip(-1), 0.5))

    # --half: fp16 tensors on disk (what the package bundles), fp32 again once loaded
    half = tmp_path / "half.safetensors"
    result = _run(["export", "e", "--workdir", str(tmp_path), "--out", str(half), "--half"])
    assert result.exit_code == 0, result.output
    from safetensors.torch import load_file

    stored = load_file(str(half))
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {torch.float16}
    assert half.stat().st_size < 0.6 * dest.stat().st_size
    loaded_half = load_model(str(half))
    assert next(loaded_half.parameters()).dtype == torch.float32
    torch.testing.assert_close(
        loaded_half(x, x.flip(-1), 0.5), model(x, x.flip(-1), 0.5), atol=2e-3, rtol=1e-2
    )

    # --ema: the EMA weights of the latest step (<exp>_ema.pkl); it and --latest exclude each other
    ema = build_model(tiny_config(feature_warp=True)).state_dict()  # other weights than `model`
    checkpoint.save_latest(
        paths, model.state_dict(), model.config, {"step": 5}, {"train_state": {"step": 5}}, ema
    )
    result = _run(["export", "e", "--workdir", str(tmp_path), "--ema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    exported = load_model(str(tmp_path / "e.safetensors")).state_dict()
    assert all(torch.equal(exported[k], v) for k, v in ema.items())
    _one_error_line(_run(["export", "e", "--latest", "--ema"]), "give one of them")


def test_average_command(tmp_path):
    from engine import load_model
    from engine.loading import build_model
    from train import checkpoint

    models, files = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(build_model(tiny_config()))
        files.append(tmp_path / f"m{seed}.pkl")
        checkpoint.atomic_save(
            checkpoint.weights_record(models[-1].state_dict(), models[-1].config, {"phase": 1}),
            files[-1],
        )
    soup = tmp_path / "soup.pkl"
    result = _run(["average", str(soup), *map(str, files)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == soup
    record = checkpoint.read(soup)
    assert record["train"]["averaged_from"] == [str(f) for f in files]
    for name, value in record["model"].items():
        parts = [m.state_dict()[name] for m in models]
        if value.is_floating_point():
            torch.testing.assert_close(value, sum(parts) / 3)
        else:
            assert value.equal(parts[0])
    loaded = load_model(str(soup))  # what `vfi bench --model` reads
    assert loaded.config == models[0].config
    # The export keeps the soup's provenance: the bundled JSON says what was averaged.
    exported = _run(["export", str(soup), "--half", "--out", str(tmp_path / "soup.safetensors")])
    assert exported.exit_code == 0, exported.output
    info = json.loads((tmp_path / "soup.json").read_text())
    assert info["train"]["averaged_from"] == [str(f) for f in files]

    # Bad input: one line, exit 1, nothing written or replaced.
    before = soup.read_bytes()
    _one_error_line(_run(["average", str(soup), *map(str, files)]), "already exists")
    assert soup.read_bytes() == before
    _one_error_line(_run(["average", str(tmp_path / "one.pkl"), str(files[0])]), "at least 2")
    _one_error_line(_run(["average", str(files[0]), *map(str, files)]), "is one of the inputs")
    _one_error_line(_run(["average", str(tmp_path / "x.safetensors"), *map(str, files)]), "*.pkl")
    other = build_model(tiny_config(feature_warp=True))
    odd = tmp_path / "odd.pkl"
    checkpoint.atomic_save(checkpoint.weights_record(other.state_dict(), other.config, {}), odd)
    out = tmp_path / "mixed.pkl"
    _one_error_line(_run(["average", str(out), str(files[0]), str(odd)]), "another architecture")
    _one_error_line(
        _run(["average", str(out), str(files[0]), str(tmp_path / "no.pkl")]), "not found"
    )
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    result = _run(["average", str(soup), str(files[0]), str(files[1]), "--force"])
    assert result.exit_code == 0, result.output
    assert checkpoint.read(soup)["train"]["averaged_from"] == [str(f) for f in files[:2]]


def test_max_iters_per_epoch_fixes_the_run_length(tmp_path):
    vimeo = make_vimeo(tmp_path / "v", n_train=6, n_test=1)
    model = tiny_model_json(tmp_path / "tiny.json")
    args = ["--exp_name", "n", "--workdir", str(tmp_path), "--device", "cpu", "--crop", "32"]
    args += ["--data_path", str(vimeo), "--model", str(model), "--num_workers", "0"]
    args += ["--batch_size", "1", "--epochs", "2", "--max_iters_per_epoch", "2"]
    result = _run(args)
    assert result.exit_code == 0, result.output
    log = (tmp_path / "log" / "train_n.log").read_text()
    assert "2 batches/epoch, 4 steps" in log and "done: step 4" in log
    assert result.stderr.count("(export: vfi train export n)") == 1  # the closing line, once


def test_only_the_evaluating_rank_prints_the_closing_line(tmp_path, monkeypatch):
    """Under torchrun every rank returns from train(); the others' best PSNR is the one they
    resumed with (they do not evaluate), so they must stay silent, not print a stale score."""
    import train.loop
    from train import checkpoint

    paths = checkpoint.paths_for(tmp_path, "r")
    vimeo = make_vimeo(tmp_path / "v", n_train=1, n_test=1)
    for main, lines in ((False, 0), (True, 1)):
        summary = {"best_psnr": 30.0, "paths": paths, "main": main}
        monkeypatch.setattr(train.loop, "train", lambda cfg, summary=summary: summary)
        result = _run(["--exp_name", "r", "--workdir", str(tmp_path), "--data_path", str(vimeo)])
        assert result.exit_code == 0, result.output
        assert result.stderr.count("best PSNR 30.000 dB") == lines, result.stderr


def test_command_module_imports_no_torch():
    code = (
        "import sys, vfi_cli.commands.train as m; assert m.command; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
