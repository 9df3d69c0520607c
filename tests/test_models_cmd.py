"""`vfi models`: the table and the JSON list agree with the registry and the built networks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.config import BACKBONE_MODES
from engine.registry import VARIANTS
from tests.conftest import tiny_config
from vfi_cli.commands.models import count_params
from vfi_cli.main import cli


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VFI_CACHE", str(tmp_path_factory.mktemp("cache")))  # never the user's cache
        result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_lists_every_variant(rows):
    assert [r["name"] for r in rows] == list(VARIANTS)
    for r in rows:
        v = VARIANTS[r["name"]]
        assert {"name", "params", "backbone_modes", "default", "weights", "description"} <= r.keys()
        assert r["default"] is v.default and r["description"] == v.description
        assert r["weights"] in ("bundled", "download", "none")
        assert r["weights"] == (v.weights.status_kind if v.weights else "none")
    assert sum(r["default"] for r in rows) == 1


def test_params_and_modes(rows):
    by_name = {r["name"]: r for r in rows}
    assert by_name["blend"]["params"] == 0 and by_name["blend"]["backbone_modes"] == []
    for name in ("vfi-s", "vfi-b"):
        r = by_name[name]
        assert r["backbone_modes"] == list(BACKBONE_MODES)
        assert set(r["params_by_mode"]) == set(BACKBONE_MODES)
        assert r["params"] == r["params_by_mode"][VARIANTS[name].config.backbone_mode] > 0
    assert by_name["vfi-b"]["params"] > by_name["vfi-s"]["params"]


def test_count_params_matches_the_built_model(tiny_model):
    assert count_params(tiny_config()) == sum(p.numel() for p in tiny_model.parameters())


def test_default_variant_weights(rows):
    r = next(r for r in rows if r["name"] == "vfi-s")
    if VARIANTS["vfi-s"].weights is None:
        assert r["weights"] == "none" and r["weights_status"] == "none"
    else:  # once trained weights ship inside the package
        assert r["weights"] == "bundled" and r["weights_status"] == "bundled"


def test_table(tmp_path, monkeypatch):
    monkeypatch.setenv("VFI_CACHE", str(tmp_path))
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name in VARIANTS:
        assert name in out
    assert "hybrid*" in out and "gated_attn_only" in out and "mamba2_only" in out
