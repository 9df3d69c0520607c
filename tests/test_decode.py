"""The decode side: threaded decoding, parallel RGB conversion, thumbnails made by swscale."""

from __future__ import annotations

import threading

import pytest
import torch

from engine.analysis import THUMB_WIDTH, is_duplicate, thumb_size, thumbnail
from engine.encode import default_workers
from engine.pipeline import decode_item
from engine.video.reader import open_pair, open_source
from tests import clips


@pytest.fixture(scope="module")
def clipdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("decode")
    clips.cfr_with_audio_subs(d)
    clips.hevc10_clip(d)
    clips.odd_size_clip(d)
    return d


def _converter_threads() -> int:
    return sum(t.name.startswith("vfi-decode-convert") for t in threading.enumerate())


@pytest.mark.parametrize("name", ["cfr.mp4", "hevc10.mkv", "odd.mp4"])
def test_parallel_conversion_matches_serial(clipdir, name):
    path = next(clipdir.glob(name.split(".")[0] + "*"))
    serial = list(open_source(path).frames(thumb_width=THUMB_WIDTH, converters=1))
    parallel = list(open_source(path).frames(thumb_width=THUMB_WIDTH, converters=3))
    assert len(serial) == len(parallel) == open_source(path).info.frame_count
    for a, b in zip(serial, parallel, strict=True):
        assert (a.index, a.time) == (b.index, b.time)
        assert torch.equal(a.image, b.image) and torch.equal(a.thumb, b.thumb)
    assert [f.index for f in serial] == list(range(len(serial)))
    assert (
        serial[0].thumb.shape
        == thumb_size(serial[0].image.shape[1], serial[0].image.shape[0])[::-1]
    )
    # Without thumb_width no thumbnail is made.
    assert next(iter(open_source(path).frames())).thumb is None


@pytest.mark.parametrize("name,depth", [("cfr.mp4", 8), ("hevc10.mkv", 10)])
def test_reader_thumbnail_is_the_frames_luma(clipdir, name, depth):
    """swscale's area-scaled thumbnail agrees with the torch one of the full RGB frame."""
    path = next(clipdir.glob(name))
    frames = list(open_source(path).frames(thumb_width=THUMB_WIDTH))
    for f in frames:
        ref = thumbnail(f.image, depth)
        assert f.thumb.dtype == torch.float32 and f.thumb.shape == ref.shape
        assert float(f.thumb.min()) >= 0.0 and float(f.thumb.max()) <= 1.0
        assert float((f.thumb - ref).abs().mean()) < 0.01
    # the square moves 2 px a frame: consecutive thumbnails must not look like duplicates
    assert not is_duplicate(frames[0].thumb, frames[1].thumb)
    assert is_duplicate(frames[0].thumb, frames[0].thumb.clone())


def test_decode_item_falls_back_to_torch_thumbnail(clipdir):
    frame = next(iter(open_source(clipdir / "cfr.mp4").frames()))
    time, image, thumb = decode_item(frame, 8, pin=False)
    assert time == frame.time and image is frame.image
    assert torch.equal(thumb, thumbnail(frame.image, 8))


def test_early_close_stops_converters(clipdir):
    before = _converter_threads()
    gen = open_source(clipdir / "cfr.mp4").frames(thumb_width=THUMB_WIDTH, converters=4)
    first = [next(gen) for _ in range(3)]
    gen.close()  # the consumer stops (error, Ctrl-C): pool shut down, container closed
    assert [f.index for f in first] == [0, 1, 2]
    assert _converter_threads() == before


def test_pair_thumbnails(tmp_path):
    import av

    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.png"
        frame = av.VideoFrame.from_ndarray(clips.pattern(i * 8, 40, 30), format="rgb24")
        with av.open(str(p), "w") as out:
            s = out.add_stream("png")
            s.width, s.height, s.pix_fmt = 40, 30, "rgb24"
            out.mux(s.encode(frame))
            out.mux(s.encode(None))
        paths.append(p)
    frames = list(open_pair(*paths).frames(thumb_width=THUMB_WIDTH))
    assert [f.thumb.shape for f in frames] == [(30, 40)] * 2
    assert float((frames[0].thumb - thumbnail(frames[0].image)).abs().max()) < 0.02


def test_default_encoders_scale_with_frame_size(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_workers(1920, 1080)[0] == 2
    assert default_workers(3840, 2160)[0] == 4
    assert default_workers(7680, 4320)[0] == 4  # one per 4 cores at most
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert default_workers(7680, 4320)[0] == 8
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_workers(3840, 2160) == (2, 1)  # never fewer than 2 segment workers
