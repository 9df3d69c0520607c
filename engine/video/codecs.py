"""The encoders and containers vfi writes: defaults, aliases, profiles, what holds what.

Mostly data, with the few rules that read it: a codec added to ``CODEC_DEFAULTS`` is offered,
planned and tested end to end (tests iterate ``KNOWN_CODECS``; ``PROFILE_PIX_FMTS`` likewise).
:mod:`engine.video.writer` turns these into an encode plan.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import VfiError

# Output file extension -> FFmpeg muxer.
CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".nut": "nut",
    ".gif": "gif",
}
# Codec -> (CRF option name or None, default CRF, default preset option, default preset value).
# libx264 defaults to `veryfast` (as HandBrake's "Fast" presets do): at CRF 18 it measured 1.0-1.4 dB
# lower Y-PSNR than `fast` (still 45-52 dB against the source: visually transparent) at the same or
# a smaller size, and encodes 2.1-2.2x faster, which is what lets the pipeline keep up with the GPU
# (docs/benchmarks.md). `--preset slow` is there for archival output.
CODEC_DEFAULTS = {
    "libx264": ("crf", "18", "preset", "veryfast"),
    "libx265": ("crf", "20", "preset", "fast"),
    "libvpx-vp9": ("crf", "30", "cpu-used", "4"),
    "libsvtav1": ("crf", "30", "preset", "8"),
    "libaom-av1": ("crf", "30", "cpu-used", "6"),
    "ffv1": (None, None, None, None),  # lossless
    # Editing intermediates: the profile is their quality knob, so --preset names it.
    "prores_ks": (None, None, "profile", "hq"),
    "dnxhd": (None, None, "profile", "dnxhr_hq"),
    "gif": (None, None, None, None),  # 256 colours a frame (engine.video.gif), then lossless
    "h264_nvenc": ("cq", "19", "preset", "p4"),
    "hevc_nvenc": ("cq", "21", "preset", "p4"),
    "av1_nvenc": ("cq", "28", "preset", "p4"),
}
KNOWN_CODECS = tuple(CODEC_DEFAULTS)
HARDWARE_SUFFIXES = ("_nvenc", "_qsv", "_amf", "_vaapi", "_videotoolbox")
# Intermediate codecs whose profile fixes the pixel format (ProRes 4444 and DNxHR 444 are 4:4:4,
# HQX and every ProRes 4:2:2 profile 10-bit): a profile here overrides the format that would follow
# the source, so `--preset 4444` alone gives a file that opens.
PROFILE_PIX_FMTS = {
    "prores_ks": {
        **dict.fromkeys(("proxy", "lt", "standard", "hq"), "yuv422p10le"),
        **dict.fromkeys(("4444", "4444xq"), "yuv444p10le"),
    },
    "dnxhd": {
        **dict.fromkeys(("dnxhr_lb", "dnxhr_sq", "dnxhr_hq"), "yuv422p"),
        "dnxhr_hqx": "yuv422p10le",
        "dnxhr_444": "yuv444p10le",
    },
}
# ProRes flavours are told apart by the track's FourCC, which editors read (Final Cut, Premiere);
# a remux resets it and MOV would then label every flavour HQ ("apch").
PRORES_FOURCC = {
    "proxy": "apco",
    "lt": "apcs",
    "standard": "apcn",
    "hq": "apch",
    "4444": "ap4h",
    "4444xq": "ap4x",
}
# FFmpeg's DNxHR encoder refuses smaller frames (dnxhdenc.c), with a message vfi's quiet log hides.
DNXHR_MIN_SIZE = (256, 120)
# DNxHR's 8-bit profiles would cut a 10-bit source's depth; HQX is its 10-bit 4:2:2 profile.
DEEP_PROFILE_DEFAULTS = {"dnxhd": "dnxhr_hqx"}
# Names users type for the intermediates -> the encoder vfi uses (FFmpeg's own `prores` is the
# older prores_aw, which takes no named profile; `dnxhr` is no FFmpeg name at all).
CODEC_ALIASES = {"prores": "prores_ks", "dnxhr": "dnxhd"}
# The container each encoder's segments are written in (engine.video.writer.SegmentWriter): MP4
# for H.264 / HEVC, MOV for DNxHD and NUT for GIF (Matroska maps neither), Matroska for the rest.
SEGMENT_CONTAINERS = {
    **dict.fromkeys(("libx264", "libx265", "h264_nvenc", "hevc_nvenc"), "mp4"),
    "dnxhd": "mov",
    "gif": "nut",
}
# Codecs MP4 cannot hold: with no -o, their output goes to .mov (editors' container for them).
MOV_CODECS = ("prores_ks", "prores", "prores_aw", "dnxhd")


def matching_intermediate(source_codec: str, fourcc: str, profile: str) -> tuple[str, str] | None:
    """(encoder, profile) that writes the source's own editing format, or None for other sources.

    ProRes in, the same ProRes flavour out (by the track's FourCC); DNxHR in, the same DNxHR
    profile out (old fixed-rate DNxHD profiles become DNxHR HQ, which takes any size).
    """
    if source_codec == "prores":
        flavour = {v: k for k, v in PRORES_FOURCC.items()}.get(fourcc, "hq")
        return "prores_ks", flavour
    if source_codec == "dnxhd":
        name = profile.lower().replace(" ", "_")  # "DNXHR HQX" -> "dnxhr_hqx"
        return "dnxhd", name if name in PROFILE_PIX_FMTS["dnxhd"] else "dnxhr_hq"
    return None


def find_encoder(codec: str):
    """FFmpeg's encoder for what a user typed (an alias, a format name: h264 -> libx264), or None."""
    import av

    try:
        return av.codec.Codec(CODEC_ALIASES.get(codec.lower(), codec), "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return None


def is_hardware(codec: str) -> bool:
    return codec.endswith(HARDWARE_SUFFIXES)


def default_codec(container: str, source_depth: int) -> str:
    """libx264, or libx265 for sources deeper than 8 bits (vp9 in WebM).

    H.264 keeps 10 bits only in the High 10 profile, which almost no hardware decoder plays;
    HEVC Main 10 is what 10-bit and HDR video is delivered in.
    """
    import av

    if container == "webm":
        return "libvpx-vp9"
    if container == "gif":
        return "gif"
    if source_depth > 8 and "libx265" in av.codecs_available:
        return "libx265"
    return "libx264"


def container_for(path: Path) -> str:
    fmt = CONTAINERS.get(path.suffix.lower())
    if fmt is None:
        raise VfiError(
            f"unknown output extension {path.suffix or '(none)'!r}; use one of "
            f"{', '.join(CONTAINERS)} or an existing directory for PNG frames"
        )
    return fmt


def default_profile(codec: str, source_pix_fmt: str, source_depth: int) -> str | None:
    """The intermediate codecs' profile that keeps the source: 4:4:4 stays 4:4:4, 10-bit 10-bit."""
    if codec not in PROFILE_PIX_FMTS:
        return None
    full_chroma = source_pix_fmt.startswith(("yuv444", "yuvj444", "gbr", "rgb", "bgr"))
    if full_chroma:
        return {"prores_ks": "4444", "dnxhd": "dnxhr_444"}[codec]
    if source_depth > 8:
        return DEEP_PROFILE_DEFAULTS.get(codec)
    return None


def container_holds(container: str, codec_name: str) -> bool:
    """Whether FFmpeg's ``container`` muxer takes ``codec_name`` video (an encoder's name)."""
    import io

    import av

    out = av.open(io.BytesIO(), "w", format=container)
    try:
        supported = getattr(out, "supported_codecs", None)
        if supported is None:
            return True
        # Encoders are named libx264 etc.; containers list codec names (h264).
        codec = av.codec.Codec(codec_name, "w")
        return codec.name in supported or codec.canonical_name in supported
    finally:
        out.close()


def holding_ext(codec_name: str) -> str:
    """The output extension for an encoder whose container the user did not name."""
    if codec_name == "gif":
        return ".gif"
    return ".mov" if codec_name in MOV_CODECS else ".mkv"  # Matroska holds nearly everything
