"""benchmarks/profile_model.py --lock: the compile runs before the lock, the timing inside it."""

from __future__ import annotations

import fcntl
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def profile_model(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its sibling model_speed
    return importlib.import_module("profile_model")


def held_elsewhere(path) -> bool:
    """Whether another open file description cannot take the lock now."""
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_without_a_lock_nothing_is_warmed_or_held(profile_model):
    calls = []
    with profile_model.timing_lock(None, warm=lambda: calls.append(1)):
        pass
    assert calls == []


def test_warms_first_then_holds_the_lock_while_timing(profile_model, tmp_path):
    lock = tmp_path / "prof.lock"
    seen = []

    def warm():
        seen.append(("warm", held_elsewhere(lock)))

    with profile_model.timing_lock(str(lock), warm=warm):
        seen.append(("timing", held_elsewhere(lock)))
    seen.append(("after", held_elsewhere(lock)))
    assert seen == [("warm", False), ("timing", True), ("after", False)]


def test_releases_the_lock_when_the_timing_fails(profile_model, tmp_path):
    lock = tmp_path / "prof.lock"
    with pytest.raises(RuntimeError), profile_model.timing_lock(str(lock), warm=lambda: None):
        raise RuntimeError("timing failed")
    assert not held_elsewhere(lock)
