"""CKDTracker: one tracker object for the ROS node, the evaluation toolkit and the command line.

With the default configuration it computes exactly the reference tracker (INTERFACE.md §3-6): fixed
template from the first frame, search crop around the previous box, Hann-windowed argmax, decoding,
mapping back and clipping. Everything added for robots (thermal gain control, registration, status,
wider search after a loss) is either a no-op on 8-bit aligned input or off by default, and none of it
changes the boxes unless enabled.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .confidence import Appearance, FeatureTracker, TrackEvidence
from .geometry import clip_box, crop_geometry, hann2d, map_box_back, sample_target
from .registration import Registration, RegistrationConfig
from .status import StatusConfig, StatusFilter, TrackStatus
from .thermal import ThermalGain, ThermalGainConfig
from .validation import TrackerNotInitializedError, check_box, check_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class LostSearchConfig:
    """Optional behaviour after a loss (off by default: the reference has none).

    When enabled and the status is LOST, the search crop is ``search_factor`` x the target size instead of
    the normal factor (the network then sees a zoomed-out view), and the box is held at the last
    confident position until a candidate scores at least the status' ``recover_threshold``.
    """

    enabled: bool = False
    search_factor: float = 8.0

    def validate(self, normal_factor: float) -> None:
        if self.enabled and not self.search_factor >= normal_factor:
            raise ValueError(f"lost search factor ({self.search_factor}) must be >= the search factor "
                             f"({normal_factor})")


@dataclass
class TrackerConfig:
    """Paper values by default; crop sizes and grids come from the network's own config."""

    template_factor: float = 2.0
    search_factor: float = 4.0
    clip_margin: int = 10
    use_hann: bool = True
    # None: pass the centre-token mask exactly when the network has candidate-elimination layers.
    ce_template_mask: bool | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    thermal_gain: ThermalGainConfig = field(default_factory=ThermalGainConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    lost_search: LostSearchConfig = field(default_factory=LostSearchConfig)
    # Crops with a side above this many pixels are resampled straight from the image instead of through the
    # reference's materialised zero-padded crop (bounded cost when a target fills the frame; a few grey
    # levels from the reference). None: always the reference's crop.
    exact_crop_limit: int | None = 2048
    # Synchronise the device between stages so that per-stage times are true (costs a little on CUDA).
    profile: bool = False

    def validate(self) -> None:
        if not (self.template_factor > 0 and self.search_factor > 0):
            raise ValueError("template_factor and search_factor must be positive")
        if self.clip_margin < 0:
            raise ValueError("clip_margin must be >= 0")
        if self.exact_crop_limit is not None and self.exact_crop_limit < 1:
            raise ValueError(f"exact_crop_limit must be None or a positive crop side, got {self.exact_crop_limit}")
        self.thermal_gain.validate()
        self.registration.validate()
        self.status.validate()
        self.lost_search.validate(self.search_factor)


@dataclass
class StepTiming:
    preprocess_s: float = 0.0   # validation, gain, registration, crops, upload + normalisation
    network_s: float = 0.0      # forward (includes waiting for the device unless profile is off on CUDA)
    postprocess_s: float = 0.0  # window, argmax, decode, map back, clip
    total_s: float = 0.0


@dataclass
class TrackResult:
    box: tuple[float, float, float, float]      # x, y, w, h (top-left corner, pixels) in the RGB image
    score: float                                # peak of the Hann-windowed response
    status: TrackStatus
    frame_index: int                            # 0 = the initialisation frame
    timing: StepTiming = field(default_factory=StepTiming)
    search_factor: float = 4.0
    # what the status is decided from: the calibrated head's confidence in [0, 1], or ``score`` without one
    confidence: float = 1.0


def _net_sizes(net: Any) -> tuple[int, int, int, int, tuple[int, ...]]:
    cfg = getattr(net, "config", None)
    if cfg is None:
        raise TypeError("the network must carry a .config with template_size, search_size and patch_size")
    t, s, p = int(cfg.template_size), int(cfg.search_size), int(cfg.patch_size)
    tg = int(getattr(cfg, "template_grid", t // p))
    sg = int(getattr(cfg, "search_grid", s // p))
    return t, s, tg, sg, tuple(getattr(cfg, "ce_loc", ()) or ())


class CKDTracker:
    """Single-target RGB + thermal tracker around a CKD network.

    ``initialize(rgb, thermal, box_xywh)`` then ``track(rgb, thermal)`` per frame. ``rgb``: HxWx3 uint8 in
    RGB order. ``thermal``: HxW or HxWx3; uint8 (used as is), uint16 raw counts or float temperatures
    (through the configured gain control), registered onto the RGB grid as configured.
    """

    def __init__(self, net: torch.nn.Module, config: TrackerConfig | None = None,
                 device: str | torch.device | None = None) -> None:
        self.config = config or TrackerConfig()
        self.config.validate()
        if device is None:
            param = next(iter(net.parameters()), None)
            device = param.device if param is not None else "cpu"
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        (self.template_size, self.search_size, self.template_grid, self.search_grid,
         ce_loc) = _net_sizes(net)
        use_mask = bool(ce_loc) if self.config.ce_template_mask is None else self.config.ce_template_mask
        self._ce_mask = self._centre_token_mask() if use_mask else None

        dev = self.device
        self._mean = torch.tensor(self.config.mean, dtype=torch.float32).view(1, 3, 1, 1).to(dev)
        self._std = torch.tensor(self.config.std, dtype=torch.float32).view(1, 3, 1, 1).to(dev)
        # A device tensor, not a Python scalar: CUDA turns division by a host scalar into a multiplication
        # by its reciprocal, which is not bit-identical to the reference's CPU division.
        self._c255 = torch.full((1, 1, 1, 1), 255.0, dtype=torch.float32, device=dev)
        self._hann = hann2d(self.search_grid).to(dev)
        g = torch.arange(self.search_grid, device=dev)
        self._cell_y, self._cell_x = g.repeat_interleave(self.search_grid), g.repeat(self.search_grid)
        S, T = self.search_size, self.template_size
        self._x_u8 = torch.empty((2, S, S, 3), dtype=torch.uint8, device=dev)
        self._x = torch.empty((2, 3, S, S), dtype=torch.float32, device=dev)
        self._z_u8 = torch.empty((2, T, T, 3), dtype=torch.uint8, device=dev)
        self._z = torch.empty((2, 3, T, T), dtype=torch.float32, device=dev)

        self._gain = ThermalGain(self.config.thermal_gain)
        self._register = Registration(self.config.registration)
        self._status = StatusFilter(self.config.status)
        self._features = FeatureTracker()
        self._state: list[float] | None = None
        self._confident_state: list[float] | None = None
        self._frame_index = -1
        self.last_crops: dict[str, np.ndarray] = {}
        self.last_thermal: np.ndarray | None = None   # the last thermal frame as the network saw it (8-bit, RGB grid)

    # ------------------------------------------------------------------ public API
    @property
    def status(self) -> TrackStatus:
        return self._status.status

    @property
    def state(self) -> tuple[float, float, float, float] | None:
        return None if self._state is None else tuple(self._state)  # type: ignore[return-value]

    @property
    def initialized(self) -> bool:
        return self._state is not None

    def reset(self) -> None:
        """Forget the target; ``track`` raises until the next ``initialize``."""
        self._state = None
        self._confident_state = None
        self._frame_index = -1
        self._status.reset()
        self._gain.reset()

    def initialize(self, rgb: np.ndarray, thermal: np.ndarray, box_xywh: Sequence[float]) -> TrackResult:
        """(Re-)initialise on a frame with the target's box (x, y, w, h); callable at any time."""
        t0 = time.perf_counter()
        rgb = check_rgb(rgb)
        box = check_box(box_xywh, rgb.shape[:2])
        saved_gain = self._gain.snapshot()
        self._gain.reset()
        try:
            thermal8 = self._thermal_to_rgb_grid(thermal, rgb.shape[:2])
        except Exception:
            self._gain.restore(saved_gain)
            raise
        geom = crop_geometry(box, self.config.template_factor, self.template_size)
        limit = self.config.exact_crop_limit
        z_rgb, _ = sample_target(rgb, box, self.config.template_factor, self.template_size, geom, limit)
        z_tir, _ = sample_target(thermal8, box, self.config.template_factor, self.template_size, geom, limit)
        self._upload_normalised((z_rgb, z_tir), self._z_u8, self._z)
        self.last_crops = {"template_rgb": z_rgb, "template_thermal": z_tir}
        self.last_thermal = thermal8
        self._state = box
        self._confident_state = box
        self._frame_index = 0
        status = self._status.start()
        self._features.start(box, Appearance.of(rgb, thermal8, box))
        total = time.perf_counter() - t0
        return TrackResult(tuple(box), 1.0, status, 0, StepTiming(preprocess_s=total, total_s=total),  # type: ignore[arg-type]
                           self.config.search_factor)

    def track(self, rgb: np.ndarray, thermal: np.ndarray) -> TrackResult:
        if self._state is None:
            raise TrackerNotInitializedError("track() called before initialize(): give the tracker a first "
                                             "frame and the target's box")
        t0 = time.perf_counter()
        rgb = check_rgb(rgb)
        saved_gain = self._gain.snapshot()
        try:
            thermal8 = self._thermal_to_rgb_grid(thermal, rgb.shape[:2])
        except Exception:
            self._gain.restore(saved_gain)
            raise
        H, W = rgb.shape[:2]
        cfg = self.config
        lost_search = cfg.lost_search.enabled and self._status.status == TrackStatus.LOST
        factor = cfg.lost_search.search_factor if lost_search else cfg.search_factor
        prev = self._state
        geom = crop_geometry(prev, factor, self.search_size)
        x_rgb, _ = sample_target(rgb, prev, factor, self.search_size, geom, cfg.exact_crop_limit)
        x_tir, _ = sample_target(thermal8, prev, factor, self.search_size, geom, cfg.exact_crop_limit)
        self._upload_normalised((x_rgb, x_tir), self._x_u8, self._x)
        self.last_crops = {"search_rgb": x_rgb, "search_thermal": x_tir}
        self.last_thermal = thermal8
        self._sync()
        t1 = time.perf_counter()

        with torch.inference_mode():
            out = self.net(self._z[0:1], self._z[1:2], self._x[0:1], self._x[1:2],
                           ce_template_mask=self._ce_mask)
            self._sync()
            t2 = time.perf_counter()
            score, raw_peak, second_peak, map_mean, spread, pred = self._decode(out, geom.resize_factor)

        box = map_box_back(pred, prev, self.search_size, geom.resize_factor)
        box = clip_box(box, H, W, margin=cfg.clip_margin)
        confidence = self._confidence(TrackEvidence(score, raw_peak, second_peak, tuple(box), map_mean, spread,
                                                    Appearance.of(rgb, thermal8, box)))
        status = self._status.update(confidence)
        if cfg.lost_search.enabled:
            box = self._hold_when_lost(box, confidence, status)
        self._state = box
        if confidence >= cfg.status.lost_threshold and status == TrackStatus.TRACKING:
            self._confident_state = box
        self._frame_index += 1
        t3 = time.perf_counter()
        timing = StepTiming(t1 - t0, t2 - t1, t3 - t2, t3 - t0)
        return TrackResult(tuple(float(v) for v in box), score, status, self._frame_index, timing,  # type: ignore[arg-type]
                           factor, confidence)

    # ------------------------------------------------------------------ internals
    def thermal_view(self, thermal: np.ndarray, rgb_hw: tuple[int, int]) -> np.ndarray:
        """``thermal`` as the network would see it (gain control, registration onto the RGB grid, 8-bit), for
        display of frames the tracker did not process (while tracking, ``last_thermal`` is that view of the
        last tracked frame). Leaves the tracking state, including the gain's smoothing, untouched."""
        saved = self._gain.snapshot()
        try:
            return self._thermal_to_rgb_grid(thermal, rgb_hw)
        finally:
            self._gain.restore(saved)

    def _thermal_to_rgb_grid(self, thermal: np.ndarray, rgb_hw: tuple[int, int]) -> np.ndarray:
        return self._register(self._gain(thermal), rgb_hw)

    def _upload_normalised(self, patches: tuple[np.ndarray, np.ndarray], u8: torch.Tensor,
                           out: torch.Tensor) -> None:
        for i, patch in enumerate(patches):
            u8[i].copy_(torch.from_numpy(np.ascontiguousarray(patch)))
        # ((t / 255) - mean) / std in float32, in the reference's order of operations.
        out.copy_(u8.permute(0, 3, 1, 2))
        out.div_(self._c255).sub_(self._mean).div_(self._std)

    def _decode(self, out: dict, resize_factor: float) -> tuple[float, float, float, float, float, list[float]]:
        """(windowed peak, raw peak, best windowed response outside the peak's 3x3 cells, mean of the raw map,
        share of cells at or above half the raw peak, box)."""
        score_map = out["score_map"]
        response = self._hann * score_map if self.config.use_hann else score_map
        g = self.search_grid
        flat = response.flatten(1)
        peak, idx = torch.max(flat, dim=1, keepdim=True)
        idx_y = idx // g
        idx_x = idx % g
        near = ((self._cell_y - idx_y).abs() <= 1) & ((self._cell_x - idx_x).abs() <= 1)
        second = flat.masked_fill(near, 0.0).amax(dim=1, keepdim=True)
        raw_flat = score_map.flatten(1)
        raw_peak = raw_flat.amax(dim=1, keepdim=True)
        map_mean = raw_flat.mean(dim=1, keepdim=True)
        spread = (raw_flat >= 0.5 * raw_peak).to(raw_flat.dtype).mean(dim=1, keepdim=True)
        gidx = idx.unsqueeze(1).expand(idx.shape[0], 2, 1)
        size = out["size_map"].flatten(2).gather(dim=2, index=gidx)
        offset = out["offset_map"].flatten(2).gather(dim=2, index=gidx).squeeze(-1)
        bbox = torch.cat([(idx_x.to(torch.float) + offset[:, :1]) / g,
                          (idx_y.to(torch.float) + offset[:, 1:]) / g,
                          size.squeeze(-1), peak.to(torch.float), raw_peak.to(torch.float),
                          second.to(torch.float), map_mean.to(torch.float), spread.to(torch.float)],
                         dim=1).cpu()   # the step's one sync
        pred = (bbox[:, :4].view(-1, 4).mean(dim=0) * self.search_size / resize_factor).tolist()
        return (float(bbox[0, 4]), float(bbox[0, 5]), float(bbox[0, 6]), float(bbox[0, 7]), float(bbox[0, 8]),
                pred)

    def _confidence(self, evidence: TrackEvidence) -> float:
        features = self._features.update(evidence)
        head = self.config.status.head
        return evidence.peak if head is None else head(features)

    @property
    def last_features(self) -> "np.ndarray | None":
        """The feature vector of the last tracked frame (``ckd calibrate`` fits the head on these)."""
        return self._features.last

    def _hold_when_lost(self, box: list[float], score: float, status: TrackStatus) -> list[float]:
        if status == TrackStatus.LOST and score < self.config.status.recover_threshold:
            return list(self._confident_state) if self._confident_state is not None else box
        return box

    def _centre_token_mask(self) -> torch.Tensor:
        try:
            from ckd_ros.model import ctr_point_mask
            return ctr_point_mask(self.net.config, batch=1, device=self.device)
        except ImportError:
            g = self.template_grid
            mask = torch.zeros((1, g * g), dtype=torch.bool, device=self.device)
            mask[0, (g // 2 - 1) * g + (g // 2 - 1)] = True
            return mask

    def _sync(self) -> None:
        if self.config.profile and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
