"""`vfi train grow`: a wider motion decoder that starts at exactly the old model's frames."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config, trained_like
from test_train_helpers import make_vimeo

from engine.errors import VfiError
from train import checkpoint
from train.grow import widen_flow
from vfi_cli.main import cli


def _trained(**changes):
    """A tiny model with every tensor moved off its initial value: the grown model must copy each
    one (a fresh model of the same seed would otherwise match by accident)."""
    model = trained_like(tiny_config(**changes))
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, 64, 96, generator=g), torch.rand(1, 3, 64, 96, generator=g)


@pytest.mark.parametrize("flow_corr", [False, True])
def test_widened_decoder_computes_the_same_frames(flow_corr):
    model = _trained(flow_corr=flow_corr)
    grown = widen_flow(model, (24, 20, 32))
    assert grown.config.flow_dims == (24, 20, 32)
    n_old = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in grown.parameters()) > n_old
    a, b = _pair()
    with torch.no_grad():
        for t in (0.5, 0.25):
            out = grown(a, b, t)
            torch.testing.assert_close(out, model(a, b, t), atol=2e-6, rtol=0)
    # The old model is left as it was.
    assert model.config.flow_dims == (16, 16, 16)


def test_the_new_channels_are_alive_and_train():
    """New output channels are initialised (not zero), and the zero weights from new inputs into
    old outputs get gradients at once: the extra width is used from the first step."""
    model = _trained(flow_corr=True)
    grown = widen_flow(model, (16, 16, 32)).train()
    body1 = grown.flow.levels[2].body[1][0].weight  # (32, 32, 3, 3)
    assert body1[16:].abs().sum() > 0  # new rows: fresh initialisation
    assert body1[:16, 16:].abs().sum() == 0  # new inputs into old outputs: zero
    a, b = _pair(1)
    gt = torch.rand_like(a)
    (grown(a, b, 0.5) - gt).abs().mean().backward()
    assert body1.grad[:16, 16:].abs().sum() > 0
    fuse = grown.refine.fuse[0][0].weight  # reads the last level's hidden state (grown)
    assert fuse.grad[:, -16:].abs().sum() > 0


def test_widen_refuses_what_it_cannot_grow():
    model = trained_like(tiny_config())
    with pytest.raises(VfiError, match="can only grow"):
        widen_flow(model, (16, 8, 16))
    with pytest.raises(VfiError, match="needs 3 widths"):
        widen_flow(model, (32, 32))
    with pytest.raises(VfiError, match="already has"):
        widen_flow(model, (16, 16, 16))
    with pytest.raises(VfiError, match="flow_refine_full"):
        widen_flow(trained_like(tiny_config(flow_refine_full=True)), (16, 16, 32))
    with pytest.raises(VfiError, match="feature_warp"):
        widen_flow(trained_like(tiny_config(feature_warp=True)), (32, 16, 16))
    widen_flow(trained_like(tiny_config(feature_warp=True)), (16, 16, 32))  # other levels: fine


def _error_line(result, pattern):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], lines
    assert "Traceback" not in result.output


def test_grow_command(tmp_path):
    from engine import load_model

    model = _trained(flow_corr=True)
    src = tmp_path / "a_best.pkl"
    checkpoint.atomic_save(checkpoint.weights_record(model.state_dict(), model.config, {}), src)
    before = src.read_bytes()
    out = tmp_path / "wide.pkl"
    run = CliRunner().invoke
    result = run(cli, ["train", "grow", str(out), str(src), "--flow_dims", "16,24,32"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == out
    assert checkpoint.read(out)["train"]["grown_from"] == str(src)
    grown = load_model(str(out))  # what `vfi bench --model` and `--resume` read
    assert grown.config.flow_dims == (16, 24, 32)
    a, b = _pair(2)
    with torch.no_grad():
        torch.testing.assert_close(grown(a, b, 0.5), model(a, b, 0.5), atol=2e-6, rtol=0)

    # An fp16 checkpoint (an EMA file) grows into an fp16 file with the same frames.
    half = tmp_path / "a_ema.pkl"
    state16 = {k: v.half() for k, v in model.state_dict().items()}
    checkpoint.atomic_save(checkpoint.weights_record(state16, model.config, {}), half)
    out16 = tmp_path / "wide16.pkl"
    result = run(cli, ["train", "grow", str(out16), str(half), "--flow_dims", "16,24,32"])
    assert result.exit_code == 0, result.output
    assert {v.dtype for v in checkpoint.read(out16)["model"].values()} == {torch.float16}
    model16 = load_model(str(half)).float()
    with torch.no_grad():
        torch.testing.assert_close(
            load_model(str(out16)).float()(a, b, 0.5), model16(a, b, 0.5), atol=2e-6, rtol=0
        )

    # Bad input: one line, exit 1, the input untouched, nothing half-written.
    _error_line(
        run(cli, ["train", "grow", str(out), str(src), "--flow_dims", "16,24,40"]), "exists"
    )
    _error_line(run(cli, ["train", "grow", str(tmp_path / "b.pkl"), str(src), "--flow_dims", "a,b"]),
                "comma-separated integers")  # fmt: skip
    _error_line(run(cli, ["train", "grow", str(src), str(src), "--flow_dims", "32,32,32"]), "input")
    _error_line(run(cli, ["train", "grow", str(tmp_path / "c.pkl"), str(tmp_path / "none.pkl"),
                          "--flow_dims", "32,32,32"]), "not found")  # fmt: skip
    _error_line(run(cli, ["train", "grow", str(tmp_path / "d.pkl"), str(src), "--flow_dims",
                          "8,8,8"]), "can only grow")  # fmt: skip
    assert src.read_bytes() == before
    # An exported .safetensors file (with its .json) and a registry name grow the same way.
    from engine import weights

    export = tmp_path / "a.safetensors"
    weights.save_weights_file(model.state_dict(), model.config, export)
    out_st = tmp_path / "wide_st.pkl"
    result = run(cli, ["train", "grow", str(out_st), str(export), "--flow_dims", "16,24,32"])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        torch.testing.assert_close(load_model(str(out_st))(a, b, 0.5), model(a, b, 0.5), atol=2e-6, rtol=0)  # fmt: skip
    _error_line(run(cli, ["train", "grow", str(tmp_path / "e.pkl"), "blend", "--flow_dims", "1,1,1"]),
                "nothing to start from")  # fmt: skip
    _error_line(run(cli, ["train", "grow", str(tmp_path / "e.pkl"), "vfi-q", "--flow_dims", "1,1,1"]),
                "unknown model")  # fmt: skip
    names = ["a.json", "a.safetensors", "a_best.pkl", "a_ema.pkl", "wide.pkl", "wide16.pkl"]
    names.append("wide_st.pkl")
    assert sorted(p.name for p in tmp_path.iterdir()) == names


@pytest.mark.usefixtures("one_thread")
def test_a_run_resumes_from_the_grown_checkpoint(tmp_path):
    """`vfi train --resume wide.pkl` builds the grown architecture from the file and trains it."""
    model = _trained()
    src, wide = tmp_path / "a.pkl", tmp_path / "wide.pkl"
    checkpoint.atomic_save(checkpoint.weights_record(model.state_dict(), model.config, {}), src)
    run = CliRunner().invoke
    assert (
        run(cli, ["train", "grow", str(wide), str(src), "--flow_dims", "16,16,24"]).exit_code == 0
    )
    vimeo = make_vimeo(tmp_path / "v", n_train=4, n_test=1)
    args = ["train", "--phase", "1", "--exp_name", "w", "--resume", str(wide), "--crop", "32"]
    args += ["--workdir", str(tmp_path), "--device", "cpu", "--data_path", str(vimeo)]
    args += ["--num_workers", "0", "--batch_size", "1", "--epochs", "1", "--max_iters_per_epoch"]
    result = run(cli, [*args, "2"])
    assert result.exit_code == 0, result.output
    assert "done: step 2" in (tmp_path / "log" / "train_w.log").read_text()
    trained = checkpoint.read(tmp_path / "ckpt" / "w.pkl")
    assert tuple(trained["config"]["flow_dims"]) == (16, 16, 24)


def test_grow_the_bundled_model_by_name(tmp_path):
    """`vfi train grow wide.pkl vfi-s ...`: the bundled weights, grown, give the bundled frames."""
    from engine import load_model
    from engine.registry import VARIANTS

    *first, last = VARIANTS["vfi-s"].config.flow_dims  # whatever the bundle's widths are now
    wider = ",".join(str(d) for d in (*first, last + 32))  # only the 1/4 level grows
    out = tmp_path / "wide.pkl"
    result = CliRunner().invoke(cli, ["train", "grow", str(out), "vfi-s", "--flow_dims", wider])
    assert result.exit_code == 0, result.output
    assert {v.dtype for v in checkpoint.read(out)["model"].values()} == {torch.float16}
    a, b = _pair(3)
    with torch.no_grad():
        torch.testing.assert_close(
            load_model(str(out))(a, b, 0.5), load_model("vfi-s")(a, b, 0.5), atol=1e-5, rtol=0
        )
