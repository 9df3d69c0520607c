"""GIF output: what the format can hold, and RGB -> 256 colours per frame.

GIF stores at most 256 colours per frame (a palette) and frame delays in whole hundredths of a
second. Each output frame gets its own palette (FFmpeg's ``palettegen`` in single-frame mode), so an
interpolated frame, whose colours are blends of its neighbours', is not forced onto a palette built
for other frames. The dither is ordered (Bayer), not error diffusion: diffusion's noise differs
from frame to frame and crawls in playback. On 30 frames of the bundled sample (480x270), Bayer
(scale 3) against FFmpeg's default sierra2_4a: 32.3 vs 30.7 dB PSNR, 2.85 vs 3.03 MB, and frame-to-
frame change beyond the source's 0.8 vs 2.3 levels per pixel. Browsers play delays under
2/100 s as 10/100 s (a rule kept for old GIFs), so more than 50 frames per second does not play
faster, it plays slower: :func:`rate_warning` says so before any work.
"""

from __future__ import annotations

from fractions import Fraction

MAX_PLAYABLE_RATE = Fraction(50)  # one frame per 2/100 s, the shortest delay browsers honour
DITHER = "bayer:bayer_scale=3"  # ordered dither: the same pattern every frame (see above)
# FFmpeg's GIF encoder, by default, writes only the rectangle that changed (offsetting) and makes
# unchanged pixels transparent (transdiff); both compare palette *indices* with the previous
# frame's, which is wrong when every frame has its own palette: an index that now means another
# colour is taken as unchanged (tests/test_gif.py builds that case). Whole frames, always.
ENCODER_OPTIONS = {"gifflags": "0"}


def rate_warning(rate: Fraction) -> str | None:
    if rate <= MAX_PLAYABLE_RATE:
        return None
    return (
        f"GIF at {float(rate):g} fps: browsers play frames shorter than 2/100 s at 10/100 s, so "
        f"this plays slowly; use --fps {MAX_PLAYABLE_RATE} or less (or a video format)"
    )


def quantize(rgb):
    """8-bit RGB (H, W, 3) numpy array -> a pal8 ``av.VideoFrame`` with its own palette.

    A frame of 256 colours or fewer (pixel art, or a frame carried over from a GIF source) is
    mapped exactly onto its own colours; any other gets palettegen's palette and the dither.
    """
    import av

    height, width = rgb.shape[:2]
    exact = exact_palette(rgb)
    graph = av.filter.Graph()
    src = graph.add_buffer(width=width, height=height, format="rgb24", time_base=Fraction(1, 100))
    sink = graph.add("buffersink")
    if exact is None:
        split = graph.add("split")
        palette = graph.add("palettegen", "stats_mode=single:reserve_transparent=0")
        use = graph.add("paletteuse", f"new=1:dither={DITHER}")
        src.link_to(split)
        split.link_to(palette, 0, 0)
        split.link_to(use, 1, 0)
    else:  # the palette is given, as paletteuse's 16x16 image; every colour is in it: no dither
        palette = graph.add_buffer(width=16, height=16, format="rgba", time_base=Fraction(1, 100))
        use = graph.add("paletteuse", "dither=none")
        src.link_to(use, 0, 0)
    palette.link_to(use, 0, 1)
    use.link_to(sink)
    graph.configure()
    if exact is not None:
        palette.push(av.VideoFrame.from_ndarray(exact, format="rgba"))
        palette.push(None)
    src.push(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    src.push(None)  # palettegen emits its palette at the end of its input
    return sink.pull()


EXACT_PROBE = 4096  # pixels sampled first: an interpolated frame fails this probe in microseconds


def exact_palette(rgb):
    """The frame's own colours as a (16, 16, 4) RGBA palette image, or None if there are > 256."""
    import numpy as np

    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8)
    packed |= rgb[..., 2]  # (H, W) 0xRRGGBB
    step = max(1, packed.size // EXACT_PROBE)
    if len(np.unique(packed.reshape(-1)[::step])) > 256:
        return None
    colours = np.unique(packed)
    if len(colours) > 256:
        return None
    colours = np.resize(colours, 256)  # unused entries repeat used colours: never a new one
    rgba = np.stack(
        [colours >> 16, (colours >> 8) & 255, colours & 255, np.full_like(colours, 255)]
    )
    return rgba.T.astype(np.uint8).reshape(16, 16, 4)
