"""The model stage of the pipeline: batches of (frame0, frame1, t) in, quantised host frames out.

:class:`Synthesizer` wraps :class:`engine.Interpolator` for the video pipeline:

- before the first frame (``calibrate`` + ``warm_up``): on CUDA with ``--tile auto`` it measures the
  memory of a forward and fits whole frames (the largest batch up to ``Options.batch``) or else
  tiles to the budget (:func:`engine.tiling.fit_to_budget`); then it runs one forward at the run's
  exact shape, which captures the Interpolator's CUDA graph and runs the autotuners, so that none of
  this lands in the middle of the video;
- every forward then has exactly that shape: a short batch is padded by repeating its last pair
  (its extra outputs are dropped), so the one graph serves every batch;
- uploads, the forward, quantisation and the download are queued on the GPU without waiting
  (:mod:`engine.device_io`): each output comes back with the CUDA event that marks its arrival;
- a CUDA out-of-memory error is caught once: tiles shrink, the batch drops to one, and it retries.
"""

from __future__ import annotations

from engine.device_io import DeviceIO, measure_bytes_per_pixel
from engine.errors import VfiError


class Synthesizer:
    def __init__(self, plan, model, options, stages, emit):
        from engine.interpolator import Interpolator

        self.plan, self.options, self.emit = plan, options, emit
        self.interp = Interpolator(
            model, plan.device, plan.precision, plan.scale, plan.tile, compile=plan.compile
        )
        self.device = self.interp.device
        self.cuda = self.device.type == "cuda"
        self.depth = plan.source.travel_depth
        self.batch = max(1, int(plan.batch))
        self.io = DeviceIO(self.device, self.depth, stages)
        self.oom_retried = False

    # before the first frame -----------------------------------------------------------------------

    def calibrate(self) -> None:
        """On CUDA with --tile auto, fit tiles and batch to the budget with a measured memory cost."""
        if not self.cuda or self.options.tile != "auto" or not self.plan.memory_budget:
            return
        from engine.tiling import fit_to_budget

        info, budget = self.plan.source, self.plan.memory_budget
        bpp = measure_bytes_per_pixel(self.interp)
        tile, self.batch = fit_to_budget(info.height, info.width, budget,
                                         max_batch=max(1, int(self.options.batch)),
                                         align=self.interp.alignment, bytes_per_pixel=bpp)  # fmt: skip
        self.interp.tile = tile
        what = "whole frames" if tile is None else f"{tile}px tiles"
        self.emit("notice", message=f"measured {bpp / 1024:.1f} KiB per pixel: {what}, "
                  f"{self.batch} per forward within {budget / 2**30:.1f} GiB")  # fmt: skip

    def warm_up(self) -> None:
        """On CUDA: one forward at the run's shape (graph capture, autotuning), then wait for it.

        Run before the other threads start: a graph capture must not overlap their CUDA calls.
        """
        if self.plan.compile:  # on CPU the compile happens at the first frame, still worth saying
            msg = "compiling the model for this frame size (once; minutes, longer on CPU)"
            self.emit("notice", message=msg)
        if not self.cuda:
            return
        import torch

        info = self.plan.source

        def frames():  # allocated per try: an OOM retry lowers self.batch
            return torch.zeros(self.batch, 3, info.height, info.width, device=self.device)

        per_pair = (1 / info.rate) / self.plan.timing.step  # output frames per input interval
        if per_pair > 2 and not self.interp.tile and hasattr(self.interp.model, "encode"):
            ts = [(j + 1) / (int(per_pair) + 1) for j in range(int(per_pair))]
            self._with_oom_retry(lambda: self.interp.many(frames(), frames(), ts))  # eager
        else:
            self._with_oom_retry(lambda: self._forward(frames(), frames(), [0.5] * self.batch))
        torch.cuda.synchronize(self.device)

    # per batch ------------------------------------------------------------------------------------

    def __call__(self, triples: list) -> list:
        """(frame0, frame1, t) triples -> [(host integer RGB (H, W, 3), ready event or None)].

        ``frame0``/``frame1`` have ``.image`` (host integer RGB) and ``.gpu`` (its upload, cached).
        """
        import torch

        from engine.video.color import quantize

        with self.io.model_time(len(triples)):
            outs = self._with_oom_retry(lambda: self._synthesize(triples))
            q = quantize(torch.cat(outs), 8 if self.depth == 8 else 16)
            q = q.permute(0, 2, 3, 1)  # (B, H, W, 3)
        return self.io.download(q)

    def _synthesize(self, triples: list) -> list:
        """(1, 3, H, W) outputs in the order of ``triples``.

        With ``Interpolator.many`` (encode once per pair, decode per t), pairs sharing the same list
        of t's are batched through it; otherwise every (pair, t) is one item of a batched forward.
        """
        import torch

        many = getattr(self.interp, "many", None)
        groups: dict = {}
        for n, (a, b, t) in enumerate(triples):
            _, _, ts, idx = groups.setdefault((id(a), id(b)), (a, b, [], []))
            ts.append(t)
            idx.append(n)
        if many is None or all(len(g[2]) == 1 for g in groups.values()):
            a = torch.cat([self._on_device(x) for x, _, _ in triples])  # (B, 3, H, W)
            b = torch.cat([self._on_device(y) for _, y, _ in triples])
            return list(self._forward(a, b, [tt for _, _, tt in triples]).split(1))
        result: list = [None] * len(triples)
        by_ts: dict = {}
        for a, b, ts, idx in groups.values():
            by_ts.setdefault(tuple(ts), []).append((a, b, idx))
        for ts, pairs in by_ts.items():
            a = torch.cat([self._on_device(x) for x, _, _ in pairs])
            b = torch.cat([self._on_device(y) for _, y, _ in pairs])
            frames = many(a, b, list(ts))  # len(ts) tensors of (P, 3, H, W)
            for j, out in enumerate(frames):
                for p, (_, _, idx) in enumerate(pairs):
                    result[idx[j]] = out[p : p + 1]
        return result

    def _forward(self, a, b, ts: list[float]):
        """Forwards of at most ``self.batch`` frames; on CUDA each padded to exactly that many.

        Padding (repeating the last pair) keeps one input shape, so the Interpolator's CUDA graph
        is captured once, in the warm-up, instead of again for every short batch. A batch with one
        t passes it as a float (a t tensor is validated and copied with a blocking device sync).
        """
        import torch

        if len(ts) != a.shape[0]:
            raise ValueError(f"{len(ts)} times for {a.shape[0]} frame pairs")
        parts = []
        for i in range(0, a.shape[0], self.batch):
            sa, sb, st = a[i : i + self.batch], b[i : i + self.batch], ts[i : i + self.batch]
            m = sa.shape[0]
            if self.cuda and m < self.batch:
                idx = torch.arange(self.batch, device=sa.device).clamp_(max=m - 1)
                sa, sb, st = sa[idx], sb[idx], st + [st[-1]] * (self.batch - m)
            t = st[0] if len(set(st)) == 1 else torch.tensor(st, dtype=torch.float32)
            parts.append(self.interp(sa, sb, t)[:m])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _on_device(self, f):
        if f.gpu is None:
            f.gpu = self.io.upload(f.image)  # (1, 3, H, W)
        return f.gpu

    def _with_oom_retry(self, fn):
        import torch

        from engine.tiling import smaller_tile

        try:
            return fn()
        except torch.cuda.OutOfMemoryError:
            if self.oom_retried:
                raise VfiError(
                    f"out of GPU memory even with {self.interp.tile}px tiles and one frame per "
                    "forward; try --scale 0.25, a smaller --tile, or --device cpu"
                ) from None
            self.oom_retried = True
            torch.cuda.empty_cache()
            h, w = self.plan.source.height, self.plan.source.width
            self.interp.tile = smaller_tile(self.interp.tile, h, w, self.interp.alignment)
            self.batch = 1
            self.emit("warning", message=f"out of GPU memory: retrying with {self.interp.tile}px "
                      "tiles, one frame per forward")  # fmt: skip
            return fn()
