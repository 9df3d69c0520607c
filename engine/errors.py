"""The one exception type for user errors.

Anything a user can cause (a missing file, a bad flag value, an unknown model name, a checkpoint
that does not fit) raises :class:`VfiError` with a one-line message that says what is wrong and what
to do. The CLI prints that line and exits non-zero without a traceback. Any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations


class VfiError(Exception):
    """A user-facing error: ``str(err)`` is one line, ready to print."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class VfiErrors(VfiError):
    """Several user errors found at once (one per input of a batch): one line each."""

    def __init__(self, messages: list[str]):
        self.lines = [" ".join(str(m).split()) for m in messages]
        super().__init__("; ".join(self.lines))


def short_reason(err: BaseException) -> str:
    """The short reason of an FFmpeg / OS error, for a VfiError message ("Invalid argument")."""
    return getattr(err, "strerror", None) or str(err).split(":")[-1].strip() or type(err).__name__


class VfiInputError(VfiError, ValueError):
    """Bad arguments given to the public API (wrong shape, dtype, range): also a ValueError."""
