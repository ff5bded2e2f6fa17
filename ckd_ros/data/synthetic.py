"""Procedural RGB + thermal single-target sequences (numpy + OpenCV only).

One generator serves the tests, the demo and the training of the embedded model. A scene is a textured
background (seen through a slowly panning camera), a target with its own colour pattern and a thermal
signature hotter than its surroundings, and distractors that each modality alone must tell apart by
detail: *colour twins* have the target's brightness and saturation in a neighbouring hue (and their own
pattern and shape) but are cold, *hot spots*
are as warm as the target but look different in RGB. Every sequence has motion and scale change; a
*condition* then degrades one modality, and the other one still suffices:

- ``normal``: both modalities usable.
- ``dark``: night: the RGB camera has almost no light (low gain, strong sensor noise, a few lamps).
- ``glare``: a saturating bloom (headlight, sun) follows the target and washes out RGB around it.
- ``crossover``: thermal crossover: the target has the temperature of the background behind it (all the
  sequence by default; with ``crossover_profile="dusk"`` its heat contrast drifts through zero during the
  sequence and comes back inverted, as when target and background cool at different rates at dusk).
- ``occlusion``: an opaque object (in both modalities) passes in front of the target for a while.

Frames: ``rgb`` is ``(N, H, W, 3)`` uint8 in R, G, B order; ``thermal`` is ``(N, H, W, 3)`` uint8 with three
equal channels (a grey 8-bit thermal image read the way the CKD tracker reads it, so both can be fed to a
tracker as they are). Ground truth ``boxes`` is ``(N, 4)`` float64 ``x, y, w, h`` (top-left, pixels) of the
whole target, also while it is occluded. The same ``seed`` gives the same scene (background, target,
distractors, motion) under every condition, so conditions can be compared on identical content.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence as SequenceT

import cv2
import numpy as np


class Condition(str, enum.Enum):
    NORMAL = "normal"
    DARK = "dark"
    GLARE = "glare"
    CROSSOVER = "crossover"
    OCCLUSION = "occlusion"


CONDITIONS: tuple[str, ...] = tuple(c.value for c in Condition)
CROSSOVER_PROFILES: tuple[str, ...] = ("constant", "dusk")


def parse_condition(condition: str | Condition) -> Condition:
    try:
        return Condition(condition)
    except ValueError:
        raise ValueError(f"unknown synthetic condition {condition!r}; expected one of {CONDITIONS}") from None


@dataclass
class SyntheticConfig:
    """Every knob of the generator; defaults are the settings the embedded model was trained and scored on."""

    width: int = 320
    height: int = 256
    num_frames: int = 100
    # sqrt(w*h) of the target at scale 1, pixels (drawn uniformly per sequence)
    target_size: tuple[float, float] = (22.0, 48.0)
    target_aspect: tuple[float, float] = (0.5, 2.0)  # w / h
    scale_amplitude: float = 0.35  # log-scale amplitude of the size oscillation
    # sinusoidal trajectory: amplitude as a fraction of the free image extent, period in frames
    motion_amplitude: tuple[float, float] = (0.15, 0.45)
    motion_period: tuple[float, float] = (50.0, 160.0)
    camera_pan: float = 14.0  # pixels of background shift amplitude
    # colour saturation (OpenCV 0..255): objects stand out from a more muted background in RGB the way warm
    # objects stand out in thermal, so either modality alone can find an object near the last position
    background_saturation: tuple[float, float] = (15.0, 90.0)
    object_saturation: tuple[float, float] = (110.0, 230.0)
    num_colour_twins: int = 2
    twin_hue_shift: tuple[float, float] = (30.0, 70.0)  # degrees between the target's hue and a twin's
    num_hot_spots: int = 2
    rgb_noise: float = 2.0  # sensor noise std, grey levels
    thermal_noise: float = 1.5
    thermal_blur: float = 1.0  # Gaussian sigma, thermal optics are softer than RGB
    # background temperature (grey levels) and target contrast above it
    thermal_background: tuple[float, float] = (50.0, 120.0)
    target_heat: tuple[float, float] = (45.0, 100.0)
    dark_gain: tuple[float, float] = (0.07, 0.14)
    dark_noise: float = 5.0
    glare_radius: tuple[float, float] = (1.3, 2.0)  # bloom sigma in target sizes
    crossover_residual: float = 0.06  # fraction of the target's heat contrast left during crossover
    # "constant": that residual all sequence. "dusk": the fraction falls linearly from `dusk_start` at the
    # first frame through zero to minus `dusk_end` at the last (polarity inverted), so thermal sees the target
    # early, loses it around the crossing and then sees it colder than its surroundings
    crossover_profile: str = "constant"
    dusk_start: tuple[float, float] = (0.4, 0.8)
    dusk_end: tuple[float, float] = (0.2, 0.6)
    occlusion_fraction: tuple[float, float] = (0.15, 0.3)  # share of the sequence with the occluder on the target

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError(f"synthetic frames must be at least 64x64, got {self.width}x{self.height}")
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {self.num_frames}")
        if max(self.target_size) * 3 > min(self.width, self.height):
            raise ValueError(f"target_size {self.target_size} too large for {self.width}x{self.height} frames")
        if self.crossover_profile not in CROSSOVER_PROFILES:
            raise ValueError(f"crossover_profile must be one of {CROSSOVER_PROFILES}, "
                             f"got {self.crossover_profile!r}")


@dataclass
class SyntheticSequence:
    name: str
    seed: int
    condition: str
    rgb: np.ndarray  # (N, H, W, 3) uint8, RGB order
    thermal: np.ndarray  # (N, H, W, 3) uint8, equal channels
    boxes: np.ndarray  # (N, 4) float64 x, y, w, h
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yields (rgb, thermal, box_xywh) per frame."""
        for i in range(len(self)):
            yield self.rgb[i], self.thermal[i], self.boxes[i]


# ----------------------------------------------------------------------------------------------- textures

def _smooth_noise(rng: np.random.Generator, h: int, w: int, octaves: SequenceT[tuple[int, float]]) -> np.ndarray:
    """Sum of bicubically upsampled random grids: cheap band-limited texture in [0, 1]."""
    out = np.zeros((h, w), np.float32)
    for cells, weight in octaves:
        gh, gw = max(2, h // cells), max(2, w // cells)
        grid = rng.random((gh, gw), dtype=np.float32)
        out += weight * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    out -= out.min()
    return out / max(float(out.max()), 1e-6)


def _palette(rng: np.random.Generator, n: int, saturation: tuple[float, float]) -> np.ndarray:
    """n random colours (float32 0..255) with an OpenCV saturation (0..255) drawn from `saturation`."""
    hsv = np.stack([rng.uniform(0, 180, n), rng.uniform(*saturation, n), rng.uniform(60, 230, n)], 1)
    return cv2.cvtColor(hsv.astype(np.uint8)[None], cv2.COLOR_HSV2RGB)[0].astype(np.float32)


def _neighbour_colour(rng: np.random.Generator, colour: np.ndarray, hue_shift: tuple[float, float]) -> np.ndarray:
    """`colour` with its hue turned by +-hue_shift degrees, saturation and value nearly kept (float32 RGB)."""
    hsv = cv2.cvtColor(np.clip(colour, 0, 255).astype(np.uint8)[None, None], cv2.COLOR_RGB2HSV)[0, 0].astype(float)
    hsv[0] = (hsv[0] + rng.choice([-1.0, 1.0]) * rng.uniform(*hue_shift) / 2.0) % 180.0  # OpenCV hue: degrees/2
    hsv[1:] = np.clip(hsv[1:] + rng.normal(0, 8, 2), 0, 255)
    return cv2.cvtColor(np.round(hsv).astype(np.uint8)[None, None], cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _colour_texture(rng: np.random.Generator, h: int, w: int, saturation: tuple[float, float]) -> np.ndarray:
    """Background: noise mapped through a random 3-colour ramp, plus a few flat structures (edges)."""
    t = _smooth_noise(rng, h, w, [(64, 1.0), (24, 0.6), (8, 0.3), (3, 0.15)])
    cols = _palette(rng, 3, saturation)
    a = np.clip(t * 2, 0, 1)[..., None]
    b = np.clip(t * 2 - 1, 0, 1)[..., None]
    img = cols[0] * (1 - a) + cols[1] * a * (1 - b) + cols[2] * b
    for _ in range(int(rng.integers(4, 10))):  # buildings / road markings: hard edges
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 3)), y0 + int(rng.integers(10, h // 3))
        col = _palette(rng, 1, saturation)[0]
        img[y0:y1, x0:x1] = 0.6 * col + 0.4 * img[y0:y1, x0:x1]
    return img.astype(np.float32)


def _object_texture(rng: np.random.Generator, base: np.ndarray, size: int = 48) -> np.ndarray:
    """Object appearance: a base colour with a second colour in stripes or blobs and soft shading."""
    second = np.clip(base + rng.normal(0, 60, 3), 0, 255).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        ang, freq = rng.uniform(0, np.pi), rng.uniform(1.5, 4.0)
        pattern = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)))
    else:
        pattern = _smooth_noise(rng, size, size, [(12, 1.0), (4, 0.4)])
    pattern = (pattern > 0.5).astype(np.float32) * 0.7 + 0.3 * pattern
    shade = 0.75 + 0.25 * (1 - ((xx - 0.4) ** 2 + (yy - 0.35) ** 2) * 2)
    tex = base * (1 - pattern[..., None]) + second * pattern[..., None]
    return np.clip(tex * shade[..., None], 0, 255).astype(np.float32)


def _heat_texture(rng: np.random.Generator, size: int = 48) -> np.ndarray:
    """Relative heat distribution inside an object (engine / body hotter in places), in [0.6, 1]."""
    return 0.6 + 0.4 * _smooth_noise(rng, size, size, [(16, 1.0), (6, 0.5)])


def _ellipse_alpha(w: int, h: int, rounded: float) -> np.ndarray:
    """Soft-edged mask of a superellipse filling a w x h box (rounded=2: ellipse, large: rectangle)."""
    yy = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    xx = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    r = (np.abs(xx)[None, :] ** rounded + np.abs(yy)[:, None] ** rounded) ** (1.0 / rounded)
    edge = 1.5 / max(min(w, h), 2)  # about one pixel of anti-aliasing
    return np.clip((1 - r) / edge + 0.5, 0, 1)


# ----------------------------------------------------------------------------------------------- motion

def _trajectory(rng: np.random.Generator, n: int, lo: float, hi: float, cfg: SyntheticConfig) -> np.ndarray:
    """Smooth 1-D path in [lo, hi]: two sinusoids, reflected at the borders."""
    t = np.arange(n, dtype=np.float64)
    span = hi - lo
    pos = rng.uniform(lo, hi) + np.zeros(n)
    for k in range(2):
        amp = rng.uniform(*cfg.motion_amplitude) * span * (1.0 if k == 0 else 0.4)
        period = rng.uniform(*cfg.motion_period) * (1.0 if k == 0 else 0.45)
        pos += amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    # reflect into range so that the path stays continuous
    period = 2 * span
    q = np.mod(pos - lo, period)
    return lo + np.where(q > span, period - q, q)


@dataclass
class _Object:
    cx: np.ndarray
    cy: np.ndarray
    w: np.ndarray
    h: np.ndarray
    texture: np.ndarray  # (S, S, 3) float32 RGB
    heat_tex: np.ndarray  # (S, S) float32 relative heat
    heat: float  # grey levels above the local background (0 = background temperature)
    rounded: float


class SyntheticScene:
    """A scene that renders any frame independently (training samples frame pairs without the rest)."""

    def __init__(self, seed: int, condition: str | Condition = "normal", config: SyntheticConfig | None = None):
        self.config = cfg = config or SyntheticConfig()
        self.seed = int(seed)
        self.condition = parse_condition(condition)
        # the scene depends on the seed only; the condition has its own stream, so that every condition of a
        # seed shows the same content
        rng = np.random.default_rng([self.seed, 0x5EED])
        crng = np.random.default_rng([self.seed, 0xC0DE, list(Condition).index(self.condition)])
        W, H, N = cfg.width, cfg.height, cfg.num_frames
        self.pad = pad = int(math.ceil(cfg.camera_pan)) + 2
        self.bg_rgb = _colour_texture(rng, H + 2 * pad, W + 2 * pad, cfg.background_saturation)
        lum = self.bg_rgb.mean(axis=2) / 255.0
        tlo, thi = sorted(rng.uniform(*cfg.thermal_background, size=2))
        tnoise = _smooth_noise(rng, H + 2 * pad, W + 2 * pad, [(48, 1.0), (12, 0.5)])
        # thermal background correlates only weakly with the visible texture (materials differ in emissivity)
        self.bg_tir = (tlo + (thi - tlo + 25) * (0.7 * tnoise + 0.3 * lum)).astype(np.float32)
        for _ in range(int(rng.integers(3, 7))):  # walls, windows, road patches at their own temperature
            x0, y0 = int(rng.integers(0, W)), int(rng.integers(0, H))
            x1, y1 = x0 + int(rng.integers(10, W // 3)), y0 + int(rng.integers(10, H // 3))
            self.bg_tir[y0:y1, x0:x1] += rng.uniform(-25, 25)
        t = np.arange(N)
        self.pan_x = cfg.camera_pan * np.sin(2 * np.pi * t / rng.uniform(80, 200) + rng.uniform(0, 6.3))
        self.pan_y = 0.6 * cfg.camera_pan * np.sin(2 * np.pi * t / rng.uniform(80, 200) + rng.uniform(0, 6.3))

        def make_object(colour: np.ndarray, heat: float, size_range: tuple[float, float]) -> _Object:
            size = rng.uniform(*size_range)
            aspect = math.exp(rng.uniform(math.log(cfg.target_aspect[0]), math.log(cfg.target_aspect[1])))
            w0, h0 = size * math.sqrt(aspect), size / math.sqrt(aspect)
            scale = np.exp(cfg.scale_amplitude * np.sin(2 * np.pi * t / rng.uniform(60, 180) + rng.uniform(0, 6.3)))
            w, h = w0 * scale, h0 * scale
            margin_x, margin_y = float(w.max()) / 2 + 2, float(h.max()) / 2 + 2
            cx = _trajectory(rng, N, margin_x, W - margin_x, cfg)
            cy = _trajectory(rng, N, margin_y, H - margin_y, cfg)
            return _Object(cx, cy, w, h, _object_texture(rng, colour), _heat_texture(rng), heat,
                           float(rng.choice([2.0, 2.5, 4.0, 8.0])))

        target_colour = _palette(rng, 1, cfg.object_saturation)[0]
        self.target = make_object(target_colour, rng.uniform(*cfg.target_heat), cfg.target_size)
        self.distractors: list[_Object] = []
        for _ in range(cfg.num_colour_twins):  # the target's brightness and saturation, background temperature
            # a neighbouring hue and its own pattern: an exact RGB copy would leave no modality able to find
            # the target during thermal crossover, and every condition is meant to be solvable by one of them
            self.distractors.append(make_object(_neighbour_colour(rng, target_colour, cfg.twin_hue_shift),
                                                rng.uniform(-5, 8), cfg.target_size))
        for _ in range(cfg.num_hot_spots):  # as hot as the target, different look
            self.distractors.append(make_object(_palette(rng, 1, cfg.object_saturation)[0],
                                                rng.uniform(*cfg.target_heat), cfg.target_size))

        self._lamp_light: np.ndarray | None = None
        self.noise_seed = int(rng.integers(0, 2**31))  # sensor noise is part of the scene, not the condition
        self.boxes = np.stack([self.target.cx - self.target.w / 2, self.target.cy - self.target.h / 2,
                               self.target.w, self.target.h], 1).astype(np.float64)

        # condition parameters (own stream)
        size_t = np.sqrt(self.target.w * self.target.h)
        self.dark_gain = crng.uniform(*cfg.dark_gain)
        self.lamps = [(crng.uniform(0, W), crng.uniform(0, H), crng.uniform(6, 16)) for _ in range(3)]
        self.glare_sigma = crng.uniform(*cfg.glare_radius) * size_t
        glare_off = crng.uniform(0.2, 0.6) * size_t
        phase = crng.uniform(0, 2 * np.pi)
        self.glare_cx = self.target.cx + glare_off * np.cos(2 * np.pi * t / 40 + phase)
        self.glare_cy = self.target.cy + glare_off * np.sin(2 * np.pi * t / 40 + phase)
        # the occluder crosses the target around a random instant with its own velocity
        frac = crng.uniform(*cfg.occlusion_fraction)
        dur = max(3.0, frac * N)
        tc = crng.uniform(0.3, 0.7) * N
        ang = crng.uniform(0, 2 * np.pi)
        tc_i = int(np.clip(round(tc), 0, N - 1))
        occ_size = 1.4 * max(self.target.w[tc_i], self.target.h[tc_i])
        speed = 2 * occ_size / dur  # covers the target for roughly `dur` frames
        self.occ_cx = self.target.cx[tc_i] + speed * (t - tc) * math.cos(ang)
        self.occ_cy = self.target.cy[tc_i] + speed * (t - tc) * math.sin(ang)
        self.occ_w, self.occ_h = occ_size * crng.uniform(1.0, 1.6), occ_size * crng.uniform(1.0, 1.6)
        self.occ_texture = _object_texture(crng, _palette(crng, 1, cfg.background_saturation)[0])
        self.occ_heat = crng.uniform(-10, 25)
        # the share of the target's own heat contrast it shows during crossover, per frame (drawn last so that
        # the profile leaves every other draw of the condition stream as it was)
        if cfg.crossover_profile == "dusk":
            self.heat_contrast = np.linspace(crng.uniform(*cfg.dusk_start), -crng.uniform(*cfg.dusk_end), N)
        else:
            self.heat_contrast = np.full(N, cfg.crossover_residual)

    def __len__(self) -> int:
        return self.config.num_frames

    @property
    def name(self) -> str:
        return f"syn_{self.condition.value}_{self.seed:05d}"

    def distractor_distance(self) -> np.ndarray:
        """(N,) per frame: the nearest distractor's centre distance to the target centre, in target sizes
        (sqrt(w h)). Small values are the close calls where trackers jump to a look-alike."""
        tg = self.target
        size = np.sqrt(tg.w * tg.h)
        d = [np.hypot(o.cx - tg.cx, o.cy - tg.cy) for o in self.distractors]
        return (np.min(d, axis=0) if d else np.full(len(size), np.inf)) / size

    # ------------------------------------------------------------------------------------------- render
    def _paste(self, rgb: np.ndarray, tir: np.ndarray, obj_tex: np.ndarray, heat_tex: np.ndarray | None,
               heat: float, cx: float, cy: float, w: float, h: float, rounded: float,
               crossover: float = 0.0) -> None:
        H, W = rgb.shape[:2]
        x0, y0 = int(math.floor(cx - w / 2)), int(math.floor(cy - h / 2))
        x1, y1 = int(math.ceil(cx + w / 2)), int(math.ceil(cy + h / 2))
        pw, ph = x1 - x0, y1 - y0
        if pw < 2 or ph < 2 or x1 <= 0 or y1 <= 0 or x0 >= W or y0 >= H:
            return
        # sub-pixel placement: the mask covers exactly [cx - w/2, cx + w/2] inside the integer patch
        xs = (np.arange(pw, dtype=np.float32) + x0 + 0.5 - cx) / (w / 2)
        ys = (np.arange(ph, dtype=np.float32) + y0 + 0.5 - cy) / (h / 2)
        r = (np.abs(xs)[None, :] ** rounded + np.abs(ys)[:, None] ** rounded) ** (1.0 / rounded)
        alpha = np.clip((1 - r) * min(w, h) / 3.0 + 0.5, 0, 1)
        tex = cv2.resize(obj_tex, (pw, ph), interpolation=cv2.INTER_LINEAR)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        a = alpha[sl][..., None]
        region = (slice(cy0, cy1), slice(cx0, cx1))
        rgb[region] = rgb[region] * (1 - a) + tex[sl] * a
        local = tir[region]
        if heat_tex is None:
            value = np.full_like(local, float(np.median(local)) + heat)
        else:
            ht = cv2.resize(heat_tex, (pw, ph), interpolation=cv2.INTER_LINEAR)[sl]
            base = float(np.median(local))
            own = base + heat * ht
            # crossover: the object's emission converges on whatever lies behind it (beyond it when > 1)
            value = (1 - crossover) * own + crossover * local
        tir[region] = local * (1 - a[..., 0]) + value * a[..., 0]

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `index` as (rgb (H,W,3) uint8, thermal (H,W,3) uint8)."""
        cfg = self.config
        if not 0 <= index < cfg.num_frames:
            raise IndexError(f"frame {index} out of range for a {cfg.num_frames}-frame sequence")
        W, H, p = cfg.width, cfg.height, self.pad
        ox, oy = int(round(p + self.pan_x[index])), int(round(p + self.pan_y[index]))
        rgb = self.bg_rgb[oy:oy + H, ox:ox + W].copy()
        tir = self.bg_tir[oy:oy + H, ox:ox + W].copy()
        for obj in self.distractors:
            self._paste(rgb, tir, obj.texture, obj.heat_tex, obj.heat, obj.cx[index], obj.cy[index],
                        obj.w[index], obj.h[index], obj.rounded)
        tg = self.target
        cross = 1.0 - float(self.heat_contrast[index]) if self.condition is Condition.CROSSOVER else 0.0
        self._paste(rgb, tir, tg.texture, tg.heat_tex, tg.heat, tg.cx[index], tg.cy[index], tg.w[index],
                    tg.h[index], tg.rounded, crossover=cross)
        if self.condition is Condition.OCCLUSION:
            self._paste(rgb, tir, self.occ_texture, None, self.occ_heat, self.occ_cx[index], self.occ_cy[index],
                        self.occ_w, self.occ_h, 8.0)
        noise = np.random.default_rng([self.noise_seed, index])
        if self.condition is Condition.DARK:
            if self._lamp_light is None:  # street lamps: bright points that help nothing (static, cached)
                yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
                light = np.zeros((H, W), np.float32)
                for lx, ly, lr in self.lamps:
                    light += 255 * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * lr ** 2))
                self._lamp_light = light[..., None]
            rgb *= self.dark_gain
            rgb += self._lamp_light
            rgb += cfg.dark_noise * noise.standard_normal(rgb.shape, dtype=np.float32)
        elif self.condition is Condition.GLARE:
            # the bloom is smooth: evaluate it on a 1/4 grid and upsample
            q = 4
            yy, xx = np.mgrid[0:(H + q - 1) // q, 0:(W + q - 1) // q].astype(np.float32) * q + (q - 1) / 2
            d2 = (xx - self.glare_cx[index]) ** 2 + (yy - self.glare_cy[index]) ** 2
            small = np.exp(-d2 / (2 * self.glare_sigma[index] ** 2)).astype(np.float32)
            bloom = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)[..., None]
            # over-exposure: the bloom adds light beyond saturation, flattening everything near the target
            rgb = rgb * (1.1 + 0.7 * bloom) + (400 * bloom) * np.array([1.0, 0.97, 0.9], np.float32)
        rgb += cfg.rgb_noise * noise.standard_normal(rgb.shape, dtype=np.float32)
        if cfg.thermal_blur > 0:
            tir = cv2.GaussianBlur(tir, (0, 0), cfg.thermal_blur)
        tir_noise = np.random.default_rng([self.noise_seed, index, 1])  # independent of what RGB drew
        tir += cfg.thermal_noise * tir_noise.standard_normal(tir.shape, dtype=np.float32)
        rgb8 = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        tir8 = np.clip(tir + 0.5, 0, 255).astype(np.uint8)
        return rgb8, np.repeat(tir8[..., None], 3, axis=2)


def generate_sequence(seed: int, condition: str | Condition = "normal", num_frames: int | None = None,
                      size: tuple[int, int] | None = None, config: SyntheticConfig | None = None) -> SyntheticSequence:
    """Renders a whole sequence. `size` is (width, height); `num_frames`/`size` override `config`."""
    cfg = config or SyntheticConfig()
    changes = {}
    if num_frames is not None:
        changes["num_frames"] = int(num_frames)
    if size is not None:
        changes["width"], changes["height"] = int(size[0]), int(size[1])
    if changes:
        cfg = dataclasses.replace(cfg, **changes)
    scene = SyntheticScene(seed, condition, cfg)
    frames = [scene.render(i) for i in range(len(scene))]
    rgb = np.stack([f[0] for f in frames])
    tir = np.stack([f[1] for f in frames])
    return SyntheticSequence(scene.name, scene.seed, scene.condition.value, rgb, tir, scene.boxes.copy(),
                             {"config": dataclasses.asdict(cfg)})


# ----------------------------------------------------------------------------------------------- writing

LAYOUTS = ("plain", "lasher")


def write_sequence(out_dir: str | Path, seq: SyntheticSequence, layout: str = "plain", ext: str = "jpg") -> Path:
    """Writes a sequence to disk.

    plain:  ``rgb/000000.jpg``, ``thermal/000000.jpg``, ``groundtruth.txt``
    lasher: ``visible/v000000.jpg``, ``infrared/i000000.jpg``, ``init.txt`` (+ identical ``visible.txt``,
            ``infrared.txt``), as the LasHeR / RGBT234 readers expect.
    Ground truth: one ``x,y,w,h`` line per frame (comma-separated, 4 decimals). Thermal is written grey.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if ext not in ("jpg", "png"):
        raise ValueError(f"image extension must be 'jpg' or 'png', got {ext!r}")
    out = Path(out_dir)
    if layout == "plain":
        rgb_dir, tir_dir, rgb_prefix, tir_prefix, gt_names = out / "rgb", out / "thermal", "", "", ["groundtruth.txt"]
    else:
        rgb_dir, tir_dir, rgb_prefix, tir_prefix = out / "visible", out / "infrared", "v", "i"
        gt_names = ["init.txt", "visible.txt", "infrared.txt"]
    rgb_dir.mkdir(parents=True, exist_ok=True)
    tir_dir.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == "jpg" else []
    for i, (rgb, tir, _) in enumerate(seq.frames()):
        if not cv2.imwrite(str(rgb_dir / f"{rgb_prefix}{i:06d}.{ext}"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {rgb_dir}")
        grey = tir[..., 0] if tir.ndim == 3 else tir
        if not cv2.imwrite(str(tir_dir / f"{tir_prefix}{i:06d}.{ext}"), grey, params):
            raise OSError(f"could not write {tir_dir}")
    text = "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in seq.boxes)
    for name in gt_names:
        (out / name).write_text(text)
    return out


def write_benchmark(root: str | Path, seeds: Iterable[int], conditions: Iterable[str] = CONDITIONS,
                    layout: str = "lasher", config: SyntheticConfig | None = None, ext: str = "jpg") -> list[str]:
    """A small benchmark: one folder per (condition, seed) under `root`, plus `list.txt` of the names."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for condition in conditions:
        for seed in seeds:
            seq = generate_sequence(seed, condition, config=config)
            write_sequence(root / seq.name, seq, layout=layout, ext=ext)
            names.append(seq.name)
    (root / "list.txt").write_text("".join(n + "\n" for n in names))
    return names
