"""Safe loading (never running pickled code), fit checks, the registry data, and cache status."""

from __future__ import annotations

import dataclasses
import hashlib
import pickle

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from engine import weights
from engine.errors import VfiError
from engine.loading import load_model
from engine.registry import EXTRA_WEIGHTS, VARIANTS, Variant, WeightsEntry
from tests.conftest import tiny_config
from vfi_cli.main import cli


class _Payload:
    """Unpickling this calls open(marker, "w"): a file appears if the pickle is ever executed."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_files(tmp_path, marker):
    zipped = tmp_path / "evil.pt"  # torch.save's zip format
    torch.save({"w": torch.zeros(2), "payload": _Payload(marker)}, zipped)
    legacy = tmp_path / "evil.pkl"  # a bare pickle stream
    with open(legacy, "wb") as f:
        pickle.dump({"model": {"payload": _Payload(marker)}}, f, protocol=2)
    return zipped, legacy


def test_malicious_pickle_is_really_malicious(tmp_path):
    # Guards the next test: loading this file unsafely *does* run the payload.
    marker = tmp_path / "control-marker"
    _, legacy = _malicious_files(tmp_path, marker)
    with open(legacy, "rb") as f:
        obj = pickle.load(f)
    obj["model"]["payload"].close()
    assert marker.exists()


def test_malicious_pickle_refused_and_creates_nothing(tmp_path):
    marker = tmp_path / "pwned"
    for path in _malicious_files(tmp_path, marker):
        with pytest.raises(VfiError) as err:
            weights.load_weights_file(path)
        msg = str(err.value)
        assert msg.startswith(f"refusing {path}") and "could run code" in msg
        assert "\n" not in msg
        with pytest.raises(VfiError, match="refusing"):
            load_model(path)  # the public API, as `--model PATH` uses it
    assert not marker.exists()
    zipped, _ = _malicious_files(tmp_path, marker)
    with pytest.raises(VfiError, match=r"`(io|builtins)\.open`"):  # names what it refused
        weights.load_weights_file(zipped)


def _small_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))


def test_state_dict_that_does_not_fit_names_the_key():
    net = _small_net()
    state = _small_net().state_dict()
    state["2.weight"] = torch.zeros(5, 4, 1, 1)
    with pytest.raises(
        VfiError, match=r"key '2.weight' has shape \(5, 4, 1, 1\), the model expects \(2, 4, 1, 1\)"
    ):
        weights.load_state_checked(net, state, source="x.pth")

    state = _small_net().state_dict()
    state["3.bias"] = torch.zeros(2)
    with pytest.raises(VfiError, match=r"unexpected key '3\.bias'"):
        weights.load_state_checked(net, state, source="x.pth")

    state = _small_net().state_dict()
    del state["0.bias"]
    with pytest.raises(VfiError, match=r"missing key '0.bias' \(1 missing in all\)"):
        weights.load_state_checked(net, state, source="x.pth")

    good = {"module." + k: v for k, v in _small_net().state_dict().items()}  # DDP prefix
    weights.load_state_checked(net, good, source="x.pth")
    assert torch.equal(net[0].weight, good["module.0.weight"])


def test_wrong_architecture_checkpoint_refused_through_load_model(tmp_path):
    torch.manual_seed(0)
    small = load_model("vfi-s", pretrained=False)  # hybrid
    state = small.state_dict()
    other = tiny_config()
    path = tmp_path / "mixed.pkl"
    torch.save({"model": state, "config": other.to_dict()}, path)  # vfi-s tensors, tiny config
    with pytest.raises(VfiError, match=r"key '.+' has shape \(.+\), the model expects \(.+\)"):
        load_model(path)


def test_safetensors_roundtrip_fp16(tmp_path, tiny_model):
    path = weights.save_weights_file(
        tiny_model.state_dict(),
        tiny_model.config,
        tmp_path / "tiny.safetensors",
        dtype=torch.float16,
    )
    assert path.with_suffix(".json").is_file()
    # the umask's file mode, as for any file the user writes (safetensors alone makes it 0600)
    assert path.stat().st_mode & 0o777 == path.with_suffix(".json").stat().st_mode & 0o777
    assert path.stat().st_mode & 0o044, "an exported weights file should be readable by others"
    state, config = weights.load_weights_file(path)
    assert config == tiny_model.config
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())

    loaded = load_model(path)
    img0, img1 = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        a, b = tiny_model(img0, img1, 0.5), loaded(img0, img1, 0.5)
    assert a.shape == b.shape == (1, 3, 32, 48)
    assert (a - b).abs().max() < 2e-2  # fp16 storage of the weights

    path.with_suffix(".json").unlink()  # the metadata copy of the config is enough
    assert weights.load_weights_file(path)[1] == tiny_model.config


def test_training_checkpoint_and_bare_state_dict(tmp_path, tiny_model):
    ckpt = tmp_path / "exp.pkl"
    torch.save(
        {"format": 1, "model": tiny_model.state_dict(), "config": tiny_model.config.to_dict()},
        ckpt,
    )
    state, config = weights.load_weights_file(ckpt)
    assert config == tiny_model.config and state.keys() == tiny_model.state_dict().keys()
    assert load_model(ckpt).config == tiny_model.config

    bare = tmp_path / "bare.pth"
    torch.save(tiny_model.state_dict(), bare)
    with pytest.raises(VfiError, match="carries no model config"):
        load_model(bare)
    assert weights.load_state_file(bare).keys() == tiny_model.state_dict().keys()


def test_unreadable_files_are_one_line(tmp_path):
    garbage = tmp_path / "junk.pt"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 10)
    with pytest.raises(VfiError, match="not a readable checkpoint"):
        weights.load_weights_file(garbage)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(VfiError, match="does not hold a state dict"):
        weights.load_weights_file(tensor)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\xff" * 64)
    with pytest.raises(VfiError, match="not a readable safetensors file"):
        weights.load_weights_file(bad_st)
    with pytest.raises(VfiError, match="weights file not found"):
        load_model(tmp_path / "absent.safetensors")


def test_untrained_variant_refuses_instead_of_random_weights():
    assert VARIANTS["vfi-b"].weights is None  # not trained yet
    with pytest.raises(VfiError, match="no trained weights for vfi-b exist yet"):
        load_model("vfi-b")
    assert load_model("vfi-b", pretrained=False).training is False


def test_the_default_is_bundled_and_a_damaged_copy_is_caught(monkeypatch):
    entry = VARIANTS["vfi-s"].weights
    assert entry.bundled and weights.verify_bundled("vfi-s") == weights.entry_path(entry)
    assert load_model("vfi-s").config == VARIANTS["vfi-s"].config
    bad = dataclasses.replace(entry, sha256="0" * 64, sha256_prefix=None)
    monkeypatch.setitem(VARIANTS, "vfi-s", dataclasses.replace(VARIANTS["vfi-s"], weights=bad))
    with pytest.raises(VfiError, match=r"damaged .* reinstall vfi"):
        weights.verify_bundled("vfi-s")


def test_unknown_model_lists_known_ones():
    with pytest.raises(VfiError) as err:
        load_model("vfi-xl")
    for name in VARIANTS:
        assert name in str(err.value)


def test_cached_variant_installed_from_file_then_loaded(tmp_path, monkeypatch, tiny_model):
    src = weights.save_weights_file(
        tiny_model.state_dict(), tiny_model.config, tmp_path / "src" / "tiny.safetensors"
    )
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    entry = WeightsEntry(
        file="tiny-test.safetensors", sha256=sha, size=src.stat().st_size, licence="test"
    )
    variant = Variant(name="tiny-test", description="test", config=tiny_model.config, weights=entry)
    monkeypatch.setitem(VARIANTS, "tiny-test", variant)
    cache = tmp_path / "cache"
    monkeypatch.setenv("VFI_CACHE", str(cache))

    assert weights.entry_status("tiny-test") == "missing"
    with pytest.raises(VfiError, match="vfi download-weights tiny-test"):
        load_model("tiny-test")
    r = CliRunner().invoke(cli, ["download-weights", "tiny-test"])  # no URL: explain --file
    assert r.exit_code == 1 and "no public download URL" in r.stderr and "--file" in r.stderr
    r = CliRunner().invoke(cli, ["download-weights", "tiny-test", "--file", str(src)])
    assert r.exit_code == 0, r.output
    assert weights.entry_status("tiny-test") == "cached"
    model = load_model("tiny-test")
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_extra_weights_path(tmp_path, monkeypatch):
    monkeypatch.setenv("VFI_CACHE", str(tmp_path))
    assert weights.extra_weights_path("vgg19") is None
    assert weights.entry_status("vgg19") == "missing"
    (tmp_path / EXTRA_WEIGHTS["vgg19"].file).write_bytes(b"x")
    assert weights.extra_weights_path("vgg19") == tmp_path / "vgg19-dcbb9e9d.pth"
    assert weights.extra_weights_path("vgg19", cache=tmp_path / "elsewhere") is None
    assert weights.entry_status("vgg19") == "cached"
    with pytest.raises(VfiError, match="known: vgg19"):
        weights.extra_weights_path("resnet50")


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("VFI_CACHE", str(tmp_path / "env"))
    assert weights.cache_dir() == tmp_path / "env"
    assert weights.cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("VFI_CACHE")
    assert weights.cache_dir().parts[-2:] == ("vfi", "weights")


def test_statuses_of_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("VFI_CACHE", str(tmp_path))
    assert weights.entry_status("blend") == "n/a"
    for name, v in VARIANTS.items():
        if v.weights is None and v.kind == "model":
            assert weights.entry_status(name) == "none"
    with pytest.raises(VfiError, match="known: vfi-s, vfi-b, vfi-xs, blend, vgg19"):
        weights.entry_status("nope")


def test_registry_entries_are_consistent():
    entries = [v.weights for v in VARIANTS.values() if v.weights] + list(EXTRA_WEIGHTS.values())
    assert entries, "the registry lists at least the vgg19 file"
    for e in entries:
        assert e.sha256 or e.sha256_prefix
        assert all(u.startswith("https://") for u in e.urls)
        assert e.licence and e.size and e.size > 0
        if e.bundled:  # shipped in the package: present, verified, small enough for a wheel
            path = weights.entry_path(e)
            assert path.is_file() and path.stat().st_size == e.size <= 16 * 2**20
            assert hashlib.sha256(path.read_bytes()).hexdigest() == e.sha256
            if path.suffix == ".safetensors":
                assert path.with_suffix(".json").is_file()
    vgg = EXTRA_WEIGHTS["vgg19"]
    assert vgg.sha256.startswith(vgg.sha256_prefix) and vgg.file == f"vgg19-{vgg.sha256_prefix}.pth"


def test_weights_entry_validates_its_digest():
    with pytest.raises(ValueError, match="64 lowercase hex"):
        WeightsEntry(file="a", sha256="abc", size=1, licence="x")
    with pytest.raises(ValueError, match="give sha256"):
        WeightsEntry(file="a", sha256=None, size=1, licence="x")
    with pytest.raises(ValueError, match="does not start with"):
        WeightsEntry(file="a", sha256="0" * 64, sha256_prefix="11111111", size=1, licence="x")
