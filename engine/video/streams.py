"""What happens to each non-video stream of the input: copy, convert, transcode or drop.

Decided once, before any work, so that ``vfi probe`` / ``--dry-run`` show exactly what a run does:

- audio: stream-copied when the output container accepts its codec; otherwise transcoded to AAC
  (Opus for WebM, which cannot hold AAC) with a warning. ``--no-audio`` drops it. With ``--slowmo``
  audio is dropped with a notice: vfi does not time-stretch audio (a slowed-down soundtrack is rarely
  wanted, and pitch-corrected stretching would be a filter graph of its own).
- subtitles: copied when accepted (with ``--slowmo`` their times are stretched with the video);
  text subtitles the container cannot hold are converted to its text format (mov_text for MP4,
  SubRip for Matroska, WebVTT for WebM; styling is lost: a warning says so); bitmap ones are dropped.
- attachments (fonts in Matroska): copied where the container has attachments, else dropped.
- data streams and extra video streams: dropped, listed in the plan. A timecode track's start is
  carried to the output's own track at the new rate (engine.timecode), not copied.
- GIF output holds pictures only: audio (with a warning) and subtitles are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.video.source import StreamInfo

TEXT_SUBS = ("subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text")
PICTURE_ONLY = ("gif",)  # containers with no audio or subtitle streams at all
TEXT_TARGET = {"mp4": "mov_text", "mov": "mov_text", "matroska": "subrip", "webm": "webvtt"}


@dataclass(frozen=True)
class StreamAction:
    stream: StreamInfo
    action: str  # "copy" | "convert" | "transcode" | "drop"
    target: str = ""  # codec written, for convert/transcode
    note: str = ""  # why, for the plan and the warning line
    warn: bool = False  # print the note as a warning (something the user may not expect)

    def describe(self) -> str:
        s = self.stream
        what = f"#{s.index} {s.type} {s.codec}"
        if s.language:
            what += f" [{s.language}]"
        if s.detail:
            what += f" ({s.detail})"
        verb = {"copy": "copy", "drop": "drop"}.get(self.action, f"{self.action} to {self.target}")
        return f"{what}: {verb}" + (f" ({self.note})" if self.note else "")


def accepted_codecs(container: str) -> set[str] | None:
    """Codec names the muxer can hold, or None when this PyAV cannot tell (then: try and see)."""
    import io

    import av

    out = av.open(io.BytesIO(), "w", format=container)
    try:
        codecs = getattr(out, "supported_codecs", None)
        return set(codecs) if codecs is not None else None
    finally:
        out.close()


def plan_streams(
    streams: list[StreamInfo],
    container: str | None,
    *,
    no_audio: bool = False,
    slowmo: bool = False,
) -> list[StreamAction]:
    """One :class:`StreamAction` per stream. ``container`` None: frames are written, not a video."""
    accepted = accepted_codecs(container) if container else set()

    def ok(codec: str) -> bool:
        return accepted is None or codec in accepted or _alias(codec) in accepted

    actions = []
    for s in streams:
        if container is None:
            actions.append(StreamAction(s, "drop", note="frames are written as images"))
        elif container in PICTURE_ONLY and s.type in ("audio", "subtitle"):
            warn = s.type == "audio" and not no_audio
            actions.append(
                StreamAction(s, "drop", note=f"{container} holds pictures only", warn=warn)
            )
        elif s.type == "audio":
            actions.append(_audio_action(s, container, ok, no_audio=no_audio, slowmo=slowmo))
        elif s.type == "subtitle":
            actions.append(_subtitle_action(s, container, ok, slowmo=slowmo))
        elif s.type == "attachment":
            if container == "matroska":
                actions.append(StreamAction(s, "copy"))
            else:
                actions.append(
                    StreamAction(
                        s, "drop", note="only Matroska (.mkv) holds attachments", warn=True
                    )
                )
        elif s.type == "video":
            actions.append(StreamAction(s, "drop", note="extra video stream (cover art, angle)"))
        elif s.detail.startswith("timecode"):
            actions.append(StreamAction(s, "drop", note="its start is carried: see timecode"))
        else:
            actions.append(StreamAction(s, "drop", note=f"{s.type} stream (e.g. timecode)"))
    return actions


def _audio_action(s, container, ok, *, no_audio, slowmo) -> StreamAction:
    if no_audio:
        return StreamAction(s, "drop", note="--no-audio")
    if slowmo:
        return StreamAction(
            s, "drop", note="--slowmo stretches the video; audio is not stretched", warn=True
        )
    if ok(s.codec):
        return StreamAction(s, "copy")
    target = "libopus" if container == "webm" else "aac"
    return StreamAction(
        s,
        "transcode",
        target=target,
        note=f"the {container} container cannot hold {s.codec}",
        warn=True,
    )


def _subtitle_action(s, container, ok, *, slowmo) -> StreamAction:
    note = "times stretched by --slowmo" if slowmo else ""
    if ok(s.codec):
        return StreamAction(s, "copy", note=note)
    target = TEXT_TARGET.get(container)
    if s.codec in TEXT_SUBS and target and ok(target):
        return StreamAction(
            s,
            "convert",
            target=target,
            note=f"{container} cannot hold {s.codec}; text kept, styling dropped",
            warn=True,
        )
    return StreamAction(s, "drop", note=f"{container} cannot hold {s.codec} subtitles", warn=True)


def _alias(codec: str) -> str:
    return {"srt": "subrip", "subrip": "srt", "ssa": "ass"}.get(codec, codec)


# --------------------------------------------------------------------------------------------------
# Text subtitle payload conversion (one packet = one cue's text)


def subtitle_text(codec: str, payload: bytes) -> str:
    """The plain text of one subtitle packet."""
    import re

    if codec == "mov_text":
        n = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        return payload[2 : 2 + n].decode("utf-8", "replace")
    text = payload.decode("utf-8", "replace")
    if codec in ("ass", "ssa"):
        # Matroska ASS packets: ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text
        text = text.split(",", 8)[-1]
        text = re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n").replace("\\n", "\n")
    return text.strip("\r\n")


def subtitle_payload(codec: str, text: str) -> bytes:
    """One packet's payload for ``codec`` holding ``text``."""
    data = text.encode("utf-8")
    if codec == "mov_text":
        return len(data).to_bytes(2, "big") + data
    return data


def copy_metadata(src: dict, dst: dict) -> None:
    """Copy tags (title, language, handler, creation time...) except what the muxer rewrites."""
    skip = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration"}
    for k, v in (src or {}).items():
        if k.lower() not in skip and not k.lower().startswith("_statistics"):
            dst[k] = v
