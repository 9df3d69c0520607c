"""Colour: the matrix, range, primaries and transfer of a video, and the one RGB quantisation.

Decoding converts Y'CbCr to R'G'B' with an *explicit* matrix and range (never swscale's silent
BT.601 default): the stream's tags where present, else the usual guess (BT.709 from 720 lines up,
BT.601 below; limited range). The R'G'B' values stay in the source's transfer and primaries (PQ, HLG,
BT.2020 are not tone-mapped): the model works on the coded signal, and the writer tags the output
with the very same primaries, transfer, matrix and range, so a round trip changes nothing.

Tag values are FFmpeg's integers (AVColorSpace, AVColorRange, AVColorPrimaries,
AVColorTransferCharacteristic); names below are only for printing.
"""

from __future__ import annotations

from dataclasses import dataclass

# AVColorSpace -> swscale's SWS_CS_* coefficient table (what reformat()'s colorspace arguments take).
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
MATRIX_NAMES = {0: "rgb", 1: "bt709", 2: "unknown", 4: "fcc", 5: "bt470bg", 6: "smpte170m",
                7: "smpte240m", 8: "ycgco", 9: "bt2020nc", 10: "bt2020c"}  # fmt: skip
PRIMARIES_NAMES = {1: "bt709", 2: "unknown", 4: "bt470m", 5: "bt470bg", 6: "smpte170m",
                   7: "smpte240m", 9: "bt2020", 11: "smpte431", 12: "smpte432"}  # fmt: skip
TRC_NAMES = {1: "bt709", 2: "unknown", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
             8: "linear", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
             16: "smpte2084", 18: "arib-std-b67"}  # fmt: skip
RANGE_NAMES = {0: "unknown", 1: "tv", 2: "pc"}
UNSPECIFIED = 2  # AVCOL_SPC/PRI/TRC_UNSPECIFIED
TV, PC = 1, 2  # AVCOL_RANGE_MPEG (limited), AVCOL_RANGE_JPEG (full)


@dataclass(frozen=True)
class ColorInfo:
    """What the stream says (``*_tag``, 2 = unspecified) and what decoding assumes (``matrix``)."""

    matrix: int  # AVColorSpace used for Y'CbCr <-> R'G'B' (never unspecified)
    range: int  # TV or PC (never unspecified)
    primaries: int = UNSPECIFIED
    trc: int = UNSPECIFIED
    matrix_tagged: bool = True  # False: `matrix` is a guess from the frame height

    @property
    def sws_matrix(self) -> int:
        return _SWS_MATRIX.get(self.matrix, 1)

    def describe(self) -> str:
        m = MATRIX_NAMES.get(self.matrix, str(self.matrix)) + ("" if self.matrix_tagged else "?")
        p = PRIMARIES_NAMES.get(self.primaries, str(self.primaries))
        t = TRC_NAMES.get(self.trc, str(self.trc))
        return f"matrix {m}, range {RANGE_NAMES.get(self.range, self.range)}, primaries {p}, transfer {t}"


def guess_matrix(height: int) -> int:
    return 1 if height >= 720 else 6  # BT.709 for HD, BT.601 (smpte170m) for SD


def color_info(obj, height: int, pix_fmt: str = "") -> ColorInfo:
    """ColorInfo from a decoded frame or a codec context (both carry the four tags)."""
    matrix = int(getattr(obj, "colorspace", UNSPECIFIED) or UNSPECIFIED)
    tagged = matrix in _SWS_MATRIX
    if not tagged:
        matrix = guess_matrix(height)
    rng = int(getattr(obj, "color_range", 0) or 0)
    if rng not in (TV, PC):
        rng = PC if pix_fmt.startswith("yuvj") else TV
    return ColorInfo(
        matrix=matrix,
        range=rng,
        primaries=int(getattr(obj, "color_primaries", UNSPECIFIED) or UNSPECIFIED),
        trc=int(getattr(obj, "color_trc", UNSPECIFIED) or UNSPECIFIED),
        matrix_tagged=tagged,
    )


def bit_depth(pix_fmt: str) -> int:
    """Bits per component of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    import av

    try:
        fmt = av.VideoFormat(pix_fmt)
    except (ValueError, TypeError):
        return 8
    return max((c.bits for c in fmt.components), default=8)


def is_rgb(pix_fmt: str) -> bool:
    import av

    try:
        return bool(av.VideoFormat(pix_fmt).is_rgb)
    except (ValueError, TypeError):
        return False


def rgb_format(depth: int) -> str:
    """The packed RGB format frames travel in: 8-bit sources in rgb24, deeper ones in rgb48le."""
    return "rgb24" if depth <= 8 else "rgb48le"


def rgb_max(depth: int) -> int:
    return 255 if depth <= 8 else 65535


def quantize(x, depth: int):
    """Float RGB in [0, 1], (..., 3, H, W) -> integer RGB in the travel format's range.

    The single quantiser of the pipeline: synthesized frames go through it, and decoded frames are
    already exactly what it would give for them (k / 255 * 255 rounds back to k), so every frame
    reaches the RGB -> Y'CbCr conversion the same way.
    """
    import torch

    top = rgb_max(depth)
    q = x.clamp(0, 1).mul(top).round_()
    return q.to(torch.uint8 if top == 255 else torch.uint16)


def to_float(x, depth: int):
    """Integer RGB (uint8 / uint16) -> float32 in [0, 1]."""
    import torch

    return x.to(torch.float32).div_(rgb_max(depth))
