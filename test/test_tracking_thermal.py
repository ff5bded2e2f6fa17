"""Thermal gain control (16-bit counts, float temperatures) and registration onto the RGB grid."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from ckd_ros.tracking import (CKDTracker, Registration, RegistrationConfig, RegistrationError, ThermalGain,
                              ThermalGainConfig, TrackerConfig, load_homography, to_uint8_thermal)
from tracking_helpers import CorrelationNet, occlusion_frames


def test_a_uint16_ramp_maps_monotonically_onto_the_full_8_bit_range_with_min_max():
    ramp = np.tile(np.linspace(20000, 21000, 320).astype(np.uint16), (240, 1))
    out = to_uint8_thermal(ramp, ThermalGainConfig(mode="minmax"))
    assert out.shape == (240, 320, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], out[..., 2])
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    # a full-range 16 -> 8 bit shift would make this narrow-band scene almost uniform
    assert len(np.unique(ramp >> 8)) <= 5 and len(np.unique(row)) > 200


def test_percentile_gain_ignores_a_few_hot_pixels_that_ruin_min_max():
    ramp = np.tile(np.linspace(20000, 21000, 320).astype(np.uint16), (240, 1))
    ramp[:2, :5] = 65000                                   # 10 dead/hot pixels
    minmax = to_uint8_thermal(ramp, ThermalGainConfig(mode="minmax"))[2:, :, 0]
    robust = to_uint8_thermal(ramp, ThermalGainConfig())[2:, :, 0]
    assert len(np.unique(minmax)) < 10
    assert len(np.unique(robust)) > 200 and robust.min() == 0 and robust.max() == 255


def test_uint16_percentiles_are_exact_histogram_percentiles():
    rng = np.random.default_rng(1)
    image = rng.integers(1000, 5000, (120, 160)).astype(np.uint16)
    gain = ThermalGain(ThermalGainConfig(low_percentile=5, high_percentile=95, sample_stride=1))
    gain(image)
    lo, hi = gain.last_limits
    assert abs(lo - np.percentile(image, 5)) <= 1 and abs(hi - np.percentile(image, 95)) <= 1


def test_float_temperatures_in_a_fixed_window_map_degrees_to_grey_levels():
    temps = np.array([[10.0, 20.0, 30.0, 40.0, 50.0, np.nan]], dtype=np.float32)
    out = to_uint8_thermal(temps, ThermalGainConfig(mode="fixed", window_min=20.0, window_max=40.0))
    assert out[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0]


def test_float_temperatures_with_percentile_gain_spread_the_scene_despite_a_hot_spot():
    temps = np.tile(np.linspace(18.0, 26.0, 200, dtype=np.float32), (100, 1))
    temps[0, 0] = 600.0                                    # an exhaust pipe
    out = to_uint8_thermal(temps)[..., 0].astype(int)
    assert out[50, 0] == 0 and out[50, -1] == 255 and out[0, 0] == 255
    assert np.all(np.diff(out[50]) >= 0) and len(np.unique(out[50])) > 150


def test_8_bit_thermal_passes_through_unchanged():
    rgb_like = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    assert to_uint8_thermal(rgb_like) is rgb_like
    grey = rgb_like[..., 0].copy()
    out = to_uint8_thermal(grey)
    assert out.shape == (50, 60, 3) and all(np.array_equal(out[..., c], grey) for c in range(3))


def test_gain_smoothing_low_passes_the_limits_between_frames():
    gain = ThermalGain(ThermalGainConfig(mode="minmax", smoothing=0.5))
    gain(np.array([[0, 1000]], np.uint16))
    gain(np.array([[0, 2000]], np.uint16))
    assert gain.last_limits == (0.0, 1500.0)


@pytest.mark.parametrize("config, message", [
    (ThermalGainConfig(mode="auto"), "percentile, minmax or fixed"),
    (ThermalGainConfig(mode="fixed"), "window_min and window_max"),
    (ThermalGainConfig(mode="fixed", window_min=5, window_max=5), "window_max > window_min"),
    (ThermalGainConfig(low_percentile=60, high_percentile=40), "low < high"),
])
def test_bad_gain_settings_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        ThermalGain(config)


# ---------------------------------------------------------------- registration
H_T2RGB = np.array([[2.0, 0.05, 30.0], [-0.03, 2.0, 20.0], [0.0, 0.0, 1.0]])


def _scene(h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(3)
    scene = cv2.resize(rng.integers(0, 200, (h // 16, w // 16), dtype=np.uint8), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    scene = np.minimum(scene, 200)
    cv2.circle(scene, (400, 260), 12, 255, -1)
    return scene


def _thermal_camera_view(scene_on_rgb_grid: np.ndarray) -> np.ndarray:
    # thermal(u) = scene(H u): what a lower-resolution, shifted camera sees
    return cv2.warpPerspective(scene_on_rgb_grid, H_T2RGB, (290, 220), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def test_a_known_homography_puts_the_thermal_image_back_onto_the_rgb_grid():
    scene = _scene()
    thermal = _thermal_camera_view(scene)
    registered = Registration(RegistrationConfig(homography=H_T2RGB))(thermal, scene.shape[:2])
    assert registered.shape == scene.shape
    inner = (slice(60, 420), slice(60, 580))
    assert np.abs(registered[inner].astype(int) - scene[inner].astype(int)).mean() < 4.0
    ys, xs = np.nonzero(registered > 250)
    assert abs(xs.mean() - 400) < 1.0 and abs(ys.mean() - 260) < 1.0
    # outside the thermal camera's view: black, never stretched content
    assert registered[470, 630] == 0


def test_the_tracker_warps_a_thermal_camera_image_with_the_configured_homography():
    scene = _scene()
    rgb = np.repeat(scene[..., None], 3, axis=2)
    thermal = _thermal_camera_view(scene)
    tracker = CKDTracker(CorrelationNet(), TrackerConfig(registration=RegistrationConfig(homography=H_T2RGB)))
    tracker.initialize(rgb, thermal, [380, 240, 40, 40])
    aligned = tracker.last_crops["template_thermal"].astype(int)
    assert np.abs(aligned - tracker.last_crops["template_rgb"].astype(int)).mean() < 4.0
    with pytest.raises(RegistrationError, match="homography"):
        CKDTracker(CorrelationNet()).initialize(rgb, thermal, [380, 240, 40, 40])


def test_different_sizes_without_homography_are_an_error_or_an_explicit_resize_with_a_warning():
    rgbs, thermals, truth = occlusion_frames(2, range(0))
    small = cv2.resize(thermals[0], (160, 120))
    with pytest.raises(RegistrationError, match="160x120 but the RGB image is 320x240"):
        Registration()(small, (240, 320))
    reg = Registration(RegistrationConfig(on_size_mismatch="resize"))
    with pytest.warns(UserWarning, match="resizing the 160x120 thermal image"):
        out = reg(small, (240, 320))
    assert out.shape == (240, 320)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # warned once, not every frame
        reg(small, (240, 320))


def test_homographies_load_from_text_and_numpy_files(tmp_path):
    (tmp_path / "h.txt").write_text("2 0.05 30\n-0.03 2 20\n0 0 1\n")
    np.save(tmp_path / "h.npy", H_T2RGB)
    (tmp_path / "h.yaml").write_text("homography: [[2, 0.05, 30], [-0.03, 2, 20], [0, 0, 1]]\n")
    for name in ("h.txt", "h.npy", "h.yaml"):
        assert np.allclose(load_homography(tmp_path / name), H_T2RGB)
    (tmp_path / "bad.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="9 numbers"):
        load_homography(tmp_path / "bad.txt")
    with pytest.raises(ValueError, match="singular"):
        Registration(RegistrationConfig(homography=np.zeros((3, 3))))
