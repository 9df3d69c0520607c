"""A clip factory for the video tests: small synthetic clips written with PyAV, in a few ms each.

Every clip is made of frames from :func:`pattern`: a smooth gradient with a bright square moving
steadily to the right (so interpolated frames are checkable), with a different colour scheme per
"scene". ``make_clip`` writes video (+ optional AAC audio and a subtitle stream) with exact
timestamps; the named helpers build the cases the issue lists.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

SUBTITLES = [
    (Fraction(1, 10), Fraction(4, 10), "Hello"),
    (Fraction(1, 2), Fraction(8, 10), "World"),
]


def pattern(i: int, width: int, height: int, scene: int = 0, depth: int = 8) -> np.ndarray:
    """Frame ``i`` of a scene as (H, W, 3) uint8 (or uint16 for depth > 8)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = [
        (0.2 + 0.6 * xx / max(width - 1, 1), 0.3 + 0.4 * yy / max(height - 1, 1), 0.5),
        (0.8 - 0.5 * yy / max(height - 1, 1), 0.2, 0.3 + 0.6 * xx / max(width - 1, 1)),
    ][scene % 2]
    img = np.stack([np.broadcast_to(np.float32(c), xx.shape) for c in base], axis=-1)
    side = max(1, min(width, height) // 4)
    x0 = (2 * i) % max(1, width - side)
    y0 = max(0, height // 2 - side // 2)
    img[y0 : y0 + side, x0 : x0 + side] = (0.95, 0.95, 0.9) if scene % 2 == 0 else (0.05, 0.9, 0.1)
    top = 255 if depth <= 8 else 65535
    out = np.round(img * top)
    return out.astype(np.uint8 if depth <= 8 else np.uint16)


def make_clip(
    path,
    *,
    frames: int = 12,
    rate: Fraction = Fraction(24000, 1001),
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: list[Fraction] | None = None,
    scenes: list[int] | None = None,
    repeat: int = 1,
    audio: bool = False,
    subtitles: bool = False,
    color: dict | None = None,
    rotation: int = 0,
    metadata: dict | None = None,
    time_base: Fraction | None = None,
    sar: Fraction | None = None,
    timecode: str = "",
) -> Path:
    """Write a clip and return its path.

    ``times``: explicit presentation times (VFR); ``scenes``: the scene of each frame (hard cuts);
    ``repeat``: each picture shown that many times (duplicates); ``color``: codec colour tags
    (colorspace, color_range, color_primaries, color_trc as FFmpeg integers).
    """
    import av

    path = Path(path)
    width, height = size
    depth = 16 if "10" in pix_fmt or "12" in pix_fmt else 8
    fmt = "rgb24" if depth == 8 else "rgb48le"
    out = av.open(str(path), "w")
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    tb = time_base or (Fraction(1, 1000) if times is not None else 1 / rate)
    stream.time_base = tb
    cc = stream.codec_context
    if codec == "libx264":
        cc.options = {"preset": "ultrafast", "crf": "10"}
    elif codec == "libx265":
        cc.options = {"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"}
    for key, value in (color or {}).items():
        setattr(cc, key, value)
    if rotation:
        stream.set_display_rotation(rotation)
    if sar:  # anamorphic: pixels sar times as wide as tall
        cc.sample_aspect_ratio = sar
    if timecode:  # MOV / MP4 write a tmcd track from it, Matroska a tag
        stream.metadata["timecode"] = timecode
    if metadata:
        out.metadata.update(metadata)
    astream = None
    if audio:
        astream = out.add_stream("aac", rate=48000)
        astream.layout = "stereo"
        astream.metadata["language"] = "eng"
    sstream = None
    if subtitles:
        sstream = out.add_mux_stream("mov_text" if path.suffix in (".mp4", ".mov") else "subrip")
        sstream.time_base = Fraction(1, 1000)
        sstream.metadata["language"] = "fra"

    for i in range(frames):
        scene = scenes[i] if scenes else 0
        img = pattern(i // repeat, width, height, scene, depth)
        frame = av.VideoFrame.from_ndarray(img, format=fmt)
        for key in ("colorspace", "color_range"):
            if color and key in color:
                setattr(frame, key, color[key])
        t = times[i] if times is not None else Fraction(i) / rate
        frame.pts = round(t / tb)
        frame.time_base = tb
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))

    if astream is not None:
        duration = (times[-1] + Fraction(1, 24)) if times else Fraction(frames) / rate
        n = int(duration * 48000)
        t = np.arange(n) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = np.stack([tone[start : start + 1024]] * 2)
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="stereo"
            )
            af.sample_rate = 48000
            af.pts = start
            af.time_base = Fraction(1, 48000)
            out.mux(astream.encode(af))
        out.mux(astream.encode(None))
    if sstream is not None:
        for start, end, text in SUBTITLES:
            data = text.encode()
            if path.suffix in (".mp4", ".mov"):  # mov_text: a 16-bit length, then the text
                data = len(data).to_bytes(2, "big") + data
            pkt = av.Packet(data)
            pkt.pts = pkt.dts = int(start * 1000)
            pkt.duration = int((end - start) * 1000)
            pkt.time_base = Fraction(1, 1000)
            pkt.stream = sstream
            out.mux(pkt)
    out.close()
    return path


def cfr_with_audio_subs(directory: Path, frames: int = 24) -> Path:
    """CFR 24000/1001 H.264 in MP4 with AAC audio and a mov_text subtitle stream."""
    return make_clip(Path(directory) / "cfr.mp4", frames=frames, audio=True, subtitles=True)


def vfr_clip(directory: Path) -> Path:
    """VFR in Matroska: gaps of 1/24 s and 1/12 s mixed."""
    gaps = [Fraction(1, 24), Fraction(1, 12), Fraction(1, 24), Fraction(1, 24), Fraction(1, 12)] * 2
    times = [Fraction(0)]
    for g in gaps:
        times.append(times[-1] + g)
    return make_clip(Path(directory) / "vfr.mkv", frames=len(times), times=times, rate=Fraction(24))


def hevc10_clip(directory: Path) -> Path:
    """10-bit HEVC with BT.2020 / HLG tags."""
    color = {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 18}
    return make_clip(
        Path(directory) / "hevc10.mkv",
        frames=8,
        codec="libx265",
        pix_fmt="yuv420p10le",
        color=color,
        rate=Fraction(25),
    )


def odd_size_clip(directory: Path, size=(33, 17)) -> Path:
    return make_clip(Path(directory) / "odd.mkv", frames=6, size=size, pix_fmt="yuv444p")


def scene_cut_clip(directory: Path) -> Path:
    """Twelve frames: six of one scene, then six of another (a hard cut before frame 6)."""
    return make_clip(Path(directory) / "cut.mp4", frames=12, scenes=[0] * 6 + [1] * 6)


def duplicates_clip(directory: Path) -> Path:
    """Animation on twos: every picture shown twice (CFR 24)."""
    return make_clip(Path(directory) / "twos.mp4", frames=12, repeat=2, rate=Fraction(24))


def interlaced_scene(fields: int, width: int = 96, height: int = 64) -> list[np.ndarray]:
    """Progressive RGB pictures at the *field* rate: a textured block moving 3 px per field."""
    yy, xx = np.mgrid[0:height, 0:width]
    background = (60 + 80 * xx / width + 40 * yy / height).astype(np.float64)
    texture = 128 + 100 * np.sin(xx / 2.0) * np.cos(yy / 3.0)
    pictures = []
    for k in range(fields):
        img = background.copy()
        x0 = 10 + 3 * k
        img[16:48, x0 : x0 + 24] = texture[16:48, x0 : x0 + 24]
        pictures.append(np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2))
    return pictures


def interlaced_clip(path, frames: int = 8, rate: Fraction = Fraction(25)) -> Path:
    """Interlaced H.264 (top field first, lossless), woven from interlaced_scene(2 * frames).

    Frame i's even rows are picture 2i (the top field, shown first), its odd rows picture 2i + 1.
    """
    return _woven_clip(path, interlaced_scene(2 * frames), rate)


def telecined_clip(path, film_frames: int = 24) -> Path:
    """Film pictures (interlaced_scene) in 29.97 fps video by 2:3 pulldown, top field first.

    Film picture k gives 2 fields when k is even, 3 when odd: per 4 pictures, 5 frames, of which
    2 weave two different pictures. Lossless H.264, flagged interlaced.
    """
    film = interlaced_scene(film_frames)
    fields = [pic for k, pic in enumerate(film) for _ in range(2 if k % 2 == 0 else 3)]
    return _woven_clip(path, fields, Fraction(30000, 1001))


def _woven_clip(path, fields: list[np.ndarray], rate: Fraction) -> Path:
    """Lossless interlaced H.264 (tff): frame i weaves fields[2i] (even rows) and fields[2i + 1]."""
    import av

    height, width = fields[0].shape[:2]
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p"
    stream.time_base = 1 / rate
    stream.codec_context.options = {"preset": "ultrafast", "qp": "0", "x264-params": "tff=1"}
    for i in range(len(fields) // 2):
        woven = fields[2 * i].copy()
        woven[1::2] = fields[2 * i + 1][1::2]
        frame = av.VideoFrame.from_ndarray(woven, format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    return Path(path)


def exif_jpeg(path, rgb: np.ndarray, orientation: int) -> Path:
    """A JPEG of ``rgb`` with an EXIF orientation tag (6: shown turned 90 degrees clockwise)."""
    import struct

    import av

    height, width = rgb.shape[:2]
    cc = av.CodecContext.create("mjpeg", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuvj444p"
    cc.time_base = Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj444p")
    data = b"".join(bytes(p) for p in [*cc.encode(frame), *cc.encode(None)])
    # APP1 "Exif": a big-endian TIFF header and one IFD entry, Orientation (0x0112, SHORT).
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    app1 = b"Exif\x00\x00" + b"MM" + struct.pack(">HI", 42, 8) + ifd + struct.pack(">I", 0)
    segment = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    Path(path).write_bytes(data[:2] + segment + data[2:])  # right after SOI
    return Path(path)


# A typical HDR10 grade: BT.2020 primaries, D65, a 1000-nit mastering display; MaxCLL / MaxFALL.
HDR10_X265 = (
    "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
    ":max-cll=1000,400"
)


def hdr10_clip(path, frames: int = 6) -> Path:
    """10-bit HEVC, PQ / BT.2020 tags, with HDR10 mastering-display and light-level SEI."""
    import av

    out = av.open(str(path), "w")
    stream = out.add_stream("libx265", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p10le"
    cc = stream.codec_context
    cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
    cc.options = {"preset": "ultrafast", "x265-params": f"log-level=error:{HDR10_X265}"}
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(pattern(i, 64, 48, depth=16), format="rgb48le")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
    out.close()
    return Path(path)
