"""What a run reports: a plain-text log, TensorBoard scalars and a Rich progress bar.

Only the main process (rank 0) writes; on the others every method is a no-op.

- ``log/train_<exp>.log``: timestamped lines (the same lines go to stderr).
- ``log/<exp>/``: TensorBoard events with exactly the tags ``loss/loss_total``, ``loss/loss_lap``,
  ``loss/loss_ter``, ``loss/loss_vgg`` (absent when the VGG term is disabled: the log and a
  TensorBoard text entry say so), ``psnr``, ``ssim`` and ``lr``. Without the ``tensorboard``
  package the run goes on with the text log and says so once.
- the terminal: a progress bar per epoch (epoch, it/s, loss, ETA) when stderr is a terminal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SCALAR_TAGS = {
    "loss_total": "loss/loss_total",
    "loss_lap": "loss/loss_lap",
    "loss_ter": "loss/loss_ter",
    "loss_vgg": "loss/loss_vgg",
    "loss_moving": "loss/loss_moving",  # only with --w_moving
    "psnr": "psnr",
    "ssim": "ssim",
    "lr": "lr",
    # only with --teacher (train/teacher.py distill_loss parts)
    "distill_flow": "distill/flow",
    "distill_inter": "distill/inter",
    "distill_mask": "distill/mask",
    "distill_frac": "distill/frac",
    "distill_total": "distill/total",
}


class RunLog:
    def __init__(self, log_dir: Path, exp: str, enabled: bool = True, echo: bool = True):
        self.enabled = enabled
        self.echo = echo
        self.writer = None
        self.file = None
        self.progress = None
        self.task = None
        if not enabled:
            return
        log_dir = Path(log_dir)
        (log_dir / exp).mkdir(parents=True, exist_ok=True)
        self.text_path = log_dir / f"train_{exp}.log"
        self.file = open(self.text_path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.info("tensorboard is not installed (pip install 'vfi[train]'): text log only")
        else:
            self.writer = SummaryWriter(log_dir=str(log_dir / exp))

    # ---- text
    def info(self, message: str, echo: bool = True) -> None:
        """A timestamped line in the text log, also printed unless ``echo`` is False."""
        if not self.enabled:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        self.file.write(line + "\n")
        self.file.flush()
        if self.echo and echo:
            if self.progress is not None:
                self.progress.console.print(message, markup=False, highlight=False)
            else:
                sys.stderr.write(message + "\n")

    def note(self, tag: str, message: str) -> None:
        """A line in the text log and a TensorBoard text entry (e.g. 'loss_vgg disabled')."""
        self.info(message)
        if self.writer is not None:
            self.writer.add_text(tag, message)

    # ---- scalars
    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(SCALAR_TAGS[name], float(value), step)
        self.writer.flush()

    # ---- progress bar
    def start_epoch(self, epoch: int, epochs: int, total: int, done: int = 0) -> None:
        if not self.enabled or not sys.stderr.isatty():
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        if self.progress is None:
            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[speed]} it/s"),
                TextColumn("loss {task.fields[loss]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total, completed=done, epoch=f"{epoch + 1}/{epochs}", loss="-", speed="-"
        )
        self._t0, self._done0 = time.perf_counter(), done

    def advance(self, done: int, loss: float | None = None) -> None:
        if self.progress is None or self.task is None:
            return
        rate = (done - self._done0) / max(time.perf_counter() - self._t0, 1e-9)
        fields = {"speed": f"{rate:.2f}"}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        self.progress.update(self.task, completed=done, **fields)

    def end_epoch(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()
            self.file = None
