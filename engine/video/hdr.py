"""HDR10 static metadata: read from the source's frames, handed on to the encoder.

Two pieces, both in the side data of decoded frames (FFmpeg structs, read here byte for byte):
the mastering display's colour volume (SMPTE ST 2086: primaries and white point as CIE 1931 xy,
luminance range in cd/m²) and the content light levels (CTA-861.3: MaxCLL, MaxFALL in cd/m²).
Players tone-map PQ video with them; the colour tags alone (engine.video.color) do not carry them.
FFmpeg's libx265 and libsvtav1 wrappers take them only as encoder parameters, so they are written
as ``x265-params`` / ``svtav1-params`` entries; other encoders get a warning instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

# AVMasteringDisplayMetadata: display_primaries[3][2] (R, G, B; x, y), white_point[2],
# min_luminance, max_luminance (AVRational = two int32 each), has_primaries, has_luminance.
_MASTERING = struct.Struct("<22i")
# AVContentLightMetadata: MaxCLL, MaxFALL (unsigned).
_LIGHT = struct.Struct("<2I")


@dataclass(frozen=True)
class Hdr10:
    primaries: tuple[Fraction, ...] | None = None  # Rx, Ry, Gx, Gy, Bx, By, Wx, Wy (CIE 1931)
    luminance: tuple[Fraction, Fraction] | None = None  # (min, max) in cd/m²
    max_cll: int | None = None  # cd/m²
    max_fall: int | None = None

    def describe(self) -> str:
        parts = []
        if self.luminance:
            lo, hi = self.luminance
            parts.append(f"mastering display {float(lo):g}-{float(hi):g} cd/m²")
        elif self.primaries:
            parts.append("mastering display primaries")
        if self.max_cll is not None:
            parts.append(f"MaxCLL {self.max_cll}, MaxFALL {self.max_fall}")
        return f"HDR10 metadata ({', '.join(parts)})"


def side_data(frame) -> list:
    """A decoded frame's side data, or [] where PyAV cannot list it.

    PyAV raises ValueError for the whole list when one entry has a type newer than its enum (FFmpeg
    8's EXIF side data of camera motion-JPEG frames, type 31). The frame's other side data is then
    out of reach too; the files where this happens carry no HDR metadata.
    """
    try:
        return list(getattr(frame, "side_data", None) or ())
    except ValueError:
        return []


def read_hdr10(frame) -> Hdr10 | None:
    """The HDR10 metadata in a decoded frame's side data, or None if it has none."""
    fields: dict = {}
    for side in side_data(frame):
        kind = side.type.name
        if kind == "MASTERING_DISPLAY_METADATA" and side.buffer_size >= _MASTERING.size:
            v = _MASTERING.unpack_from(bytes(side))
            rationals = [_q(v[i], v[i + 1]) for i in range(0, 20, 2)]
            if v[20] and all(q is not None for q in rationals[:8]):
                fields["primaries"] = tuple(rationals[:8])
            if v[21] and rationals[8] is not None and rationals[9] is not None:
                fields["luminance"] = (rationals[8], rationals[9])
        elif kind == "CONTENT_LIGHT_LEVEL" and side.buffer_size >= _LIGHT.size:
            fields["max_cll"], fields["max_fall"] = _LIGHT.unpack_from(bytes(side))
    return Hdr10(**fields) if fields else None


# Per-frame metadata a decoder hands on that vfi cannot carry: new frames have none of their own,
# and FFmpeg's encoders here do not take it. Side-data type -> what users call it.
UNCARRIED = {
    "DYNAMIC_HDR_PLUS": "HDR10+ dynamic metadata",
    "DOVI_METADATA": "Dolby Vision metadata",
    "DOVI_RPU_BUFFER": "Dolby Vision metadata",
    "DYNAMIC_HDR_VIVID": "HDR Vivid dynamic metadata",
    "A53_CC": "closed captions (CEA-608/708)",
}


def uncarried(frame) -> list[str]:
    """What ``frame`` carries that the output will not (UNCARRIED), each once, in a fixed order."""
    kinds = {side.type.name for side in side_data(frame)}
    names = [name for kind, name in UNCARRIED.items() if kind in kinds]
    return list(dict.fromkeys(names))


def _q(num: int, den: int) -> Fraction | None:
    return Fraction(num, den) if den > 0 else None


def x265_params(h: Hdr10) -> list[str]:
    """``master-display`` (xy in 1/50000, luminance in 1/10000 cd/m²; G, B, R order) and ``max-cll``."""
    out = []
    if h.primaries and h.luminance:
        rx, ry, gx, gy, bx, by, wx, wy = (round(c * 50000) for c in h.primaries)
        lo, hi = (round(x * 10000) for x in h.luminance)
        out.append(f"master-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({hi},{lo})")
    if h.max_cll is not None:
        out.append(f"max-cll={h.max_cll},{h.max_fall}")
    return out


def svtav1_params(h: Hdr10) -> list[str]:
    """``mastering-display`` (decimal xy and cd/m²; G, B, R order) and ``content-light``."""
    out = []
    if h.primaries and h.luminance:
        rx, ry, gx, gy, bx, by, wx, wy = (f"{float(c):.5f}" for c in h.primaries)
        lo, hi = (f"{float(x):.4f}" for x in h.luminance)
        out.append(
            f"mastering-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({hi},{lo})"
        )
    if h.max_cll is not None:
        out.append(f"content-light={h.max_cll},{h.max_fall}")
    return out


# Encoder -> (its parameter-list option, the entries for an Hdr10).
ENCODER_PARAMS = {
    "libx265": ("x265-params", x265_params),
    "libsvtav1": ("svtav1-params", svtav1_params),
}


def add_to_options(codec: str, h: Hdr10, options: dict[str, str]) -> bool:
    """Append the metadata to ``options`` (in place) for encoders that take it; False otherwise.

    Keys the user already set in that parameter list are left as they are.
    """
    if codec not in ENCODER_PARAMS:
        return False
    key, entries = ENCODER_PARAMS[codec]
    merge_params(options, key, entries(h))
    return True


def merge_params(options: dict[str, str], key: str, entries: list[str]) -> None:
    """Append ``name=value`` entries to the ``:``-separated list ``options[key]`` (x265-params,
    svtav1-params), in place, skipping names the list already has (the user's win)."""
    given = options.get(key, "")
    taken = {item.split("=", 1)[0] for item in given.split(":") if item}
    extra = [e for e in entries if e.split("=", 1)[0] not in taken]
    if extra:
        options[key] = ":".join(filter(None, [given, *extra]))
