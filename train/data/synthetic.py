"""Synthetic triplets from still photos: camera motion plus moving foreground layers.

A *scene* is a photo seen through a moving camera (a homography that changes with time) with up to
a few foreground layers on top (patches cut from other photos with random soft masks, each with its
own affine motion). Every transform is a function of ``u = 2t - 1`` (u = -1, 0, 1 at t = 0, 0.5, 1),
so a frame at any t is rendered directly from the source photos: the middle frame is the scene at
t = 0.5, exact by construction, never an interpolation of the two end frames. Layers are composited
in order, so they occlude the background and each other, and the occlusions move.

Geometry (all 3x3 homogeneous matrices, float64):
- output pixel coordinates are centred: pixel (i, j) of a size x size frame has centre
  p = (j + 0.5 - size/2, i + 0.5 - size/2);
- photo coordinates are pixel coordinates of the (resized) photo, pixel centres at k + 0.5;
- ``camera(u)`` maps an output point to a background-photo point;
- ``layer.pose(u)`` maps a layer-local point to an output point, and ``layer.texture`` maps a
  layer-local point to a point of the layer's photo.

Small layers (``small_layers``, off by default) are the same kind of layer at a few pixels of radius:
small, fast objects; ``still_scene`` (off by default) is the share of scenes whose camera and large
layers keep at most 5 % of their motion, so that small objects cross a near-static scene.

Motion ranges are per half-step (t 0 -> 0.5) at ``motion_scale = 1``: camera shifts up to 24 px
and layers up to 32 px at 256², i.e. end-to-end displacements up to ~50-65 px; ``motion_scale``
multiplies all of them (a curriculum grows it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SyntheticConfig:
    size: int = 256  # output side (square crops)
    motion_scale: float = 1.0  # multiplies every motion range below
    # pixel ranges are for a 256² output and scale with `size` (a 512² crop moves twice as far)
    cam_shift: float = 24.0  # px per half-step
    cam_rotate: float = 3.0  # degrees per half-step
    cam_zoom: float = 0.05  # log-scale per half-step
    cam_perspective: float = 0.15  # corner offset (fraction of the shift) of the projective part
    layers: tuple[int, int] = (0, 3)  # inclusive range of foreground layer counts
    layer_shift: float = 32.0  # px per half-step
    layer_rotate: float = 8.0  # degrees per half-step
    layer_zoom: float = 0.08  # log-scale per half-step
    layer_radius: tuple[float, float] = (0.12, 0.35)  # mask radius, fraction of `size`
    # Small fast objects (a ball, a hand, a bird): on our dev sets most of the flow's loss sits in
    # the few per cent of pixels that belong to such objects, and the layers above are 30-90 px in
    # radius at 256². These are drawn after them (so on top), moving up to 16 px frame to frame:
    # the dev sets' case (4-16 px). At the large layers' speeds (up to 64 px) RIFE HDv3 itself lost
    # most of them in a spot check: no teacher, and little that a 3-level decoder could learn.
    small_layers: tuple[int, int] = (0, 0)  # inclusive range of their count; (0, 0): none
    small_radius: tuple[float, float] = (0.015, 0.06)  # 4-15 px at 256²
    small_shift: float = 8.0  # px per half-step
    # Share of scenes where the camera and the large layers (almost) stand still, so that the small
    # layers are the only fast motion: the dev sets' costliest case (a ball across a still room).
    still_scene: float = 0.0
    still_motion: float = 0.05  # a still scene keeps up to this fraction of its motion
    edge: tuple[float, float] = (0.7, 2.5)  # soft mask edge width in px


@dataclass
class Layer:
    photo: int  # index into the photo list
    level: int  # pyramid level of that photo
    texture: np.ndarray  # (3, 3) layer-local -> photo coords
    centre: np.ndarray  # (2,) position at t = 0.5, output coords
    velocity: np.ndarray  # (2,) px per half-step
    angle: float  # radians at t = 0.5
    spin: float  # radians per half-step
    log_scale: float
    zoom: float  # log-scale per half-step
    radius: float  # mean mask radius in layer-local px
    wobble: np.ndarray  # (3, 2) amplitude and phase of harmonics 2..4 of the mask outline
    edge: float  # soft edge width in px

    def pose(self, u: float) -> np.ndarray:
        """Layer-local -> output coordinates at u = 2t - 1."""
        return (
            _translate(*(self.centre + u * self.velocity))
            @ _rotate(self.angle + u * self.spin)
            @ _scale(math.exp(self.log_scale + u * self.zoom))
        )


@dataclass
class Scene:
    size: int
    photo: int  # background photo index
    level: int  # its pyramid level
    base: np.ndarray  # (3, 3) output -> photo coords at t = 0.5
    shift: np.ndarray  # (2,) px per half-step
    rotate: float  # radians per half-step
    zoom: float  # log-scale per half-step
    perspective: np.ndarray  # (2,) projective row per half-step
    layers: list[Layer] = field(default_factory=list)

    def camera(self, u: float) -> np.ndarray:
        """Output -> background-photo coordinates at u = 2t - 1."""
        motion = (
            _translate(*(u * self.shift))
            @ _rotate(u * self.rotate)
            @ _scale(math.exp(u * self.zoom))
            @ _projective(*(u * self.perspective))
        )
        return self.base @ motion


def load_photo_pyramid(path, max_side: int = 2048, min_side: int = 320) -> list[torch.Tensor]:
    """Decode a photo into uint8 (3, H, W) tensors, largest first, halving each level.

    The top level is limited to ``max_side`` and levels stop before the short side drops below
    ``min_side``; area averaging avoids aliasing in the smaller levels. PyAV decodes; OpenCV when
    PyAV is absent (the device machine), as in corpus_dataset.decode_frames.
    """
    try:
        import av
    except ModuleNotFoundError:
        import cv2

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"cannot read photo {path}") from None
        rgb = np.ascontiguousarray(bgr[..., ::-1])
    else:
        with av.open(str(path)) as container:
            rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    h, w = img.shape[-2:]
    s = min(1.0, max_side / max(w, h))
    levels = []
    while min(w, h) * s >= min_side or not levels:
        size = (max(2, round(h * s)), max(2, round(w * s)))
        level = F.interpolate(img, size=size, mode="area") if s < 1 else img
        levels.append(level[0].round().clamp(0, 255).to(torch.uint8).contiguous())
        s /= 2
    return levels


def random_scene(
    pyramids: list[list[torch.Tensor]], rng: np.random.Generator, cfg: SyntheticConfig
) -> Scene:
    """Draw a random scene: background photo, camera motion, foreground layers."""
    size, ms = cfg.size, cfg.motion_scale * cfg.size / 256
    photo = int(rng.integers(len(pyramids)))
    level = int(rng.integers(len(pyramids[photo])))
    _, ph, pw = pyramids[photo][level].shape
    # base view: a random zoom (slightly either way keeps sampling density near 1:1) and rotation
    # around a random point far enough from the border for the whole motion
    scale = math.exp(rng.uniform(-0.3, 0.3))
    reach = scale * (size * 0.75 + 1.6 * cfg.cam_shift * ms)
    cx = rng.uniform(min(reach, pw / 2), max(pw - reach, pw / 2))
    cy = rng.uniform(min(reach, ph / 2), max(ph - reach, ph / 2))
    base = _translate(cx, cy) @ _rotate(rng.uniform(-0.2, 0.2)) @ _scale(scale)
    shift = _in_disc(rng) * cfg.cam_shift * ms
    # projective terms sized so that a corner moves by about `cam_perspective * cam_shift` px
    perspective = rng.uniform(-1, 1, 2) * cfg.cam_perspective * cfg.cam_shift * ms / (size / 2) ** 2
    scene = Scene(
        size=size,
        photo=photo,
        level=level,
        base=base,
        shift=shift,
        rotate=math.radians(rng.uniform(-1, 1) * cfg.cam_rotate * cfg.motion_scale),
        zoom=rng.uniform(-1, 1) * cfg.cam_zoom * cfg.motion_scale,
        perspective=perspective,
    )
    n_layers = int(rng.integers(cfg.layers[0], cfg.layers[1] + 1))
    for _ in range(n_layers):
        scene.layers.append(_random_layer(pyramids, rng, cfg, cfg.layer_radius, cfg.layer_shift))
    # The options below draw nothing when off, so scenes stay those of older configs.
    still = cfg.still_scene > 0 and rng.random() < cfg.still_scene
    if cfg.small_layers[1] > 0:
        low = max(cfg.small_layers[0], int(still))  # a still scene needs something that moves
        for _ in range(int(rng.integers(low, cfg.small_layers[1] + 1))):
            scene.layers.append(
                _random_layer(pyramids, rng, cfg, cfg.small_radius, cfg.small_shift)
            )
    if still:
        keep = rng.uniform(0, cfg.still_motion)
        scene.shift = scene.shift * keep
        scene.rotate, scene.zoom = scene.rotate * keep, scene.zoom * keep
        scene.perspective = scene.perspective * keep
        for layer in scene.layers[:n_layers]:  # the large ones; the small ones keep moving
            layer.velocity = layer.velocity * keep
            layer.spin, layer.zoom = layer.spin * keep, layer.zoom * keep
    return scene


def render(
    scene: Scene, pyramids: list[list[torch.Tensor]], t: float | list[float]
) -> torch.Tensor:
    """The scene at time(s) ``t``: float (3, S, S) for one t, (T, 3, S, S) for a list; in [0, 1]."""
    ts = [t] if isinstance(t, (int, float)) else list(t)
    us = [2.0 * float(x) - 1.0 for x in ts]
    pts = _output_points(scene.size)  # (S*S, 3) float64
    src = pyramids[scene.photo][scene.level]
    out = _sample(src, [scene.camera(u) for u in us], pts, scene.size)  # (T, 3, S, S)
    for layer in scene.layers:
        tex = pyramids[layer.photo][layer.level]
        to_local = [np.linalg.inv(layer.pose(u)) for u in us]  # output -> layer-local
        colour = _sample(tex, [layer.texture @ m for m in to_local], pts, scene.size)
        alpha = torch.stack([_mask(layer, _apply(m, pts), scene.size) for m in to_local])
        out = out * (1 - alpha) + colour * alpha
    return out[0] if isinstance(t, (int, float)) else out


def synthetic_triplet(
    pyramids: list[list[torch.Tensor]], rng: np.random.Generator, cfg: SyntheticConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(img0, imgt, img1) float (3, S, S) in [0, 1]; imgt is the scene rendered at t = 0.5."""
    frames = render(random_scene(pyramids, rng, cfg), pyramids, [0.0, 0.5, 1.0])
    return frames[0], frames[1], frames[2]


def camera_motion(scene: Scene) -> float:
    """Largest end-to-end displacement (output px) of the background over the frame corners."""
    h = scene.size / 2
    corners = np.array([[-h, -h, 1], [h, -h, 1], [-h, h, 1], [h, h, 1]], dtype=np.float64)
    # a point seen at p at t = 0 shows the photo point camera(-1) p; find where it is at t = 1
    corners = torch.from_numpy(corners)
    moved = _apply(np.linalg.inv(scene.camera(1.0)), _apply(scene.camera(-1.0), corners))
    return float((moved[:, :2] - corners[:, :2]).abs().max())


# ---------------------------------------------------------------------------------------------
# helpers


def _random_layer(
    pyramids,
    rng: np.random.Generator,
    cfg: SyntheticConfig,
    radius_range: tuple[float, float],
    shift: float,
) -> Layer:
    size, ms = cfg.size, cfg.motion_scale * cfg.size / 256
    photo = int(rng.integers(len(pyramids)))
    level = int(rng.integers(len(pyramids[photo])))
    _, ph, pw = pyramids[photo][level].shape
    radius = rng.uniform(*radius_range) * size
    # the texture: a random patch of the layer photo, randomly rotated
    tex_scale = math.exp(rng.uniform(-0.3, 0.3))
    reach = radius * 1.6 * tex_scale
    tx = rng.uniform(min(reach, pw / 2), max(pw - reach, pw / 2))
    ty = rng.uniform(min(reach, ph / 2), max(ph - reach, ph / 2))
    texture = _translate(tx, ty) @ _rotate(rng.uniform(-math.pi, math.pi)) @ _scale(tex_scale)
    wobble = np.stack(
        [rng.uniform(0, 0.25, 3) / np.arange(1, 4), rng.uniform(0, 2 * math.pi, 3)], 1
    )
    return Layer(
        photo=photo,
        level=level,
        texture=texture,
        centre=rng.uniform(-0.45, 0.45, 2) * size,
        velocity=_in_disc(rng) * shift * ms,
        angle=rng.uniform(-math.pi, math.pi),
        spin=math.radians(rng.uniform(-1, 1) * cfg.layer_rotate * cfg.motion_scale),
        log_scale=rng.uniform(-0.1, 0.1),
        zoom=rng.uniform(-1, 1) * cfg.layer_zoom * cfg.motion_scale,
        radius=radius,
        wobble=wobble,
        edge=rng.uniform(*cfg.edge),
    )


def _mask(layer: Layer, local: torch.Tensor, size: int) -> torch.Tensor:
    """Soft blob mask evaluated analytically at layer-local points: (1, S, S) in [0, 1]."""
    x, y = local[:, 0].float(), local[:, 1].float()
    r, theta = torch.hypot(x, y), torch.atan2(y, x)
    outline = torch.ones_like(r)
    for k in range(3):  # harmonics 2..4 give lobes and dents, not a plain disc
        amp, phase = layer.wobble[k]
        outline += float(amp) * torch.cos((k + 2) * theta + float(phase))
    # signed distance to the outline in layer px, softened over `edge` px (a sigmoid ramp)
    alpha = torch.sigmoid((outline * layer.radius - r) * (4.0 / layer.edge))
    return alpha.view(1, size, size)


def _output_points(size: int) -> torch.Tensor:
    c = torch.arange(size, dtype=torch.float64) + 0.5 - size / 2
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack(
        [x.reshape(-1), y.reshape(-1), torch.ones(size * size, dtype=torch.float64)], 1
    )


def _apply(m: np.ndarray, pts: torch.Tensor) -> torch.Tensor:
    """Homogeneous points (N, 3) float64 through the 3x3 matrix ``m``, normalised to w = 1."""
    q = pts @ torch.from_numpy(np.ascontiguousarray(m.T))
    return q / q[:, 2:3]


def _sample(
    src: torch.Tensor, mats: list[np.ndarray], pts: torch.Tensor, size: int
) -> torch.Tensor:
    """Bilinear samples of uint8 ``src`` (3, H, W) at ``m @ pts`` for each matrix: (T, 3, S, S).

    Only the bounding box of the sampled points (the image of the output corners: a homography
    maps the output square to a quadrilateral) is converted to float, so large photos stay cheap.
    Points outside the photo take the border colour (the scene never needs many of them).
    """
    _, h, w = src.shape
    half = size / 2
    corners = np.array([[-half, -half, 1], [half, -half, 1], [-half, half, 1], [half, half, 1]])
    xy = np.concatenate([(corners @ m.T)[:, :2] / (corners @ m.T)[:, 2:] for m in mats])
    x0 = min(max(math.floor(xy[:, 0].min()) - 1, 0), w - 1)
    x1 = min(max(math.ceil(xy[:, 0].max()) + 2, x0 + 1), w)
    y0 = min(max(math.floor(xy[:, 1].min()) - 1, 0), h - 1)
    y1 = min(max(math.ceil(xy[:, 1].max()) + 2, y0 + 1), h)
    region = src[:, y0:y1, x0:x1].float().div_(255.0)[None]  # (1, 3, h', w')
    rh, rw = region.shape[-2:]
    # photo coords -> grid_sample coords; pixel-centre convention with align_corners=False:
    # coordinate k + 0.5 is pixel k, and the region spans [-1, 1]
    norm = np.array([[2 / rw, 0, -2 * x0 / rw - 1], [0, 2 / rh, -2 * y0 / rh - 1], [0, 0, 1]])
    grid = torch.stack([_apply(norm @ m, pts)[:, :2] for m in mats]).float()
    grid = grid.view(len(mats), size, size, 2)
    region = region.expand(len(mats), -1, -1, -1)
    out = F.grid_sample(region, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.clamp_(0, 1)


def _in_disc(rng: np.random.Generator) -> np.ndarray:
    """A uniform random point of the unit disc (speeds spread over all magnitudes)."""
    r, a = math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
    return np.array([r * math.cos(a), r * math.sin(a)])


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1]], dtype=np.float64)


def _rotate(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)


def _scale(s: float) -> np.ndarray:
    return np.array([[s, 0, 0], [0, s, 0], [0, 0, 1]], dtype=np.float64)


def _projective(a: float, b: float) -> np.ndarray:
    return np.array([[1, 0, 0], [0, 1, 0], [a, b, 1]], dtype=np.float64)
