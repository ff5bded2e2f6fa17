"""The synthetic RGB-thermal generator: deterministic, well-formed, and each condition does what it says."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ckd_ros.data.synthetic import (CONDITIONS, SyntheticConfig, SyntheticScene, generate_sequence,
                                    write_benchmark, write_sequence)

SMALL = SyntheticConfig(num_frames=24)


def _inside(box: np.ndarray) -> tuple[slice, slice]:
    x, y, w, h = box
    return slice(int(y + 0.3 * h), int(y + 0.7 * h) + 1), slice(int(x + 0.3 * w), int(x + 0.7 * w) + 1)


def _ring(img: np.ndarray, box: np.ndarray) -> np.ndarray:
    x, y, w, h = box
    H, W = img.shape[:2]
    x0, y0, x1, y1 = int(max(x - w, 0)), int(max(y - h, 0)), int(min(x + 2 * w, W)), int(min(y + 2 * h, H))
    mask = np.zeros(img.shape[:2], bool)
    mask[y0:y1, x0:x1] = True
    mask[int(y):int(y + h) + 1, int(x):int(x + w) + 1] = False
    return img[mask]


def test_sequences_have_documented_shapes_and_types() -> None:
    seq = generate_sequence(1, "normal", num_frames=10, size=(160, 128), config=SyntheticConfig(target_size=(16, 30)))
    assert seq.rgb.shape == (10, 128, 160, 3) and seq.rgb.dtype == np.uint8
    assert seq.thermal.shape == (10, 128, 160, 3) and seq.thermal.dtype == np.uint8
    assert np.array_equal(seq.thermal[..., 0], seq.thermal[..., 2])
    assert seq.boxes.shape == (10, 4) and seq.boxes.dtype == np.float64
    assert (seq.boxes[:, 2:] > 4).all()


def test_same_seed_gives_identical_frames_and_different_seeds_differ() -> None:
    a, b, c = (generate_sequence(s, "dark", config=SMALL) for s in (7, 7, 8))
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.thermal, b.thermal)
    assert np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.rgb, c.rgb)


def test_a_seed_shows_the_same_motion_under_every_condition() -> None:
    boxes = [generate_sequence(3, c, config=SMALL).boxes for c in CONDITIONS]
    for other in boxes[1:]:
        assert np.array_equal(boxes[0], other)


def test_target_moves_changes_scale_and_stays_in_the_image() -> None:
    seq = generate_sequence(2, "normal", num_frames=100)
    x, y, w, h = seq.boxes.T
    centre_path = np.hypot(np.diff(x + w / 2), np.diff(y + h / 2)).sum()
    assert centre_path > 50
    area = w * h
    assert area.max() / area.min() > 1.3
    assert (x >= -1).all() and (y >= -1).all() and (x + w <= 321).all() and (y + h <= 257).all()


def test_target_is_hotter_than_its_surroundings_except_in_crossover() -> None:
    contrasts = {}
    for cond in ("normal", "crossover"):
        seq = generate_sequence(4, cond, config=SMALL)
        vals = []
        for tir, box in zip(seq.thermal[:, :, :, 0], seq.boxes):
            vals.append(tir[_inside(box)].astype(float).mean() - np.median(_ring(tir, box)))
        contrasts[cond] = float(np.mean(vals))
    assert contrasts["normal"] > 30
    assert abs(contrasts["crossover"]) < 10


def test_a_dusk_crossover_passes_the_heat_contrast_through_zero_and_inverts_it() -> None:
    cfg = SyntheticConfig(num_frames=60, crossover_profile="dusk")
    seq = generate_sequence(4, "crossover", config=cfg)
    scene = SyntheticScene(4, "crossover", cfg)
    contrast = np.array([tir[_inside(box)].astype(float).mean() - np.median(_ring(tir, box))
                         for tir, box in zip(seq.thermal[:, :, :, 0], seq.boxes)])
    share = scene.heat_contrast
    assert 0.4 <= share[0] <= 0.8 and -0.6 <= share[-1] <= -0.2 and (np.diff(share) < 0).all()
    crossing = int(np.argmin(np.abs(share)))
    assert contrast[:5].mean() > 15  # the target starts visibly warmer than its surroundings,
    assert abs(contrast[max(crossing - 2, 0):crossing + 3].mean()) < 8  # vanishes at the crossing
    assert contrast[-5:].mean() < -8  # and ends colder
    # the scene itself is the constant profile's: only the target's emission changes
    assert np.array_equal(seq.rgb, generate_sequence(4, "crossover", config=SyntheticConfig(num_frames=60)).rgb)


def test_an_unknown_crossover_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="crossover_profile must be one of"):
        SyntheticConfig(crossover_profile="sunset")


def test_darkness_removes_rgb_contrast_and_glare_saturates_the_target() -> None:
    normal = generate_sequence(5, "normal", config=SMALL)
    dark = generate_sequence(5, "dark", config=SMALL)
    glare = generate_sequence(5, "glare", config=SMALL)
    box = normal.boxes[0]
    assert dark.rgb[0][_inside(box)].mean() < 0.25 * normal.rgb[0][_inside(box)].mean() + 10
    assert (glare.rgb[:, :, :, :][0][_inside(box)] >= 250).mean() > 0.5
    # thermal is untouched by light
    assert np.array_equal(dark.thermal, normal.thermal)


def test_occluder_covers_the_target_in_both_modalities_for_a_while() -> None:
    normal = generate_sequence(6, "normal", num_frames=60)
    occl = generate_sequence(6, "occlusion", num_frames=60)
    covered = []
    for i, box in enumerate(normal.boxes):
        sl = _inside(box)
        d_rgb = np.abs(normal.rgb[i][sl].astype(int) - occl.rgb[i][sl].astype(int)).mean()
        covered.append(d_rgb > 20)
    assert 3 <= sum(covered) < 60


def test_scene_renders_frames_in_any_order() -> None:
    scene = SyntheticScene(9, "glare", SMALL)
    late = scene.render(20)
    scene.render(3)
    assert np.array_equal(late[0], scene.render(20)[0])
    with pytest.raises(IndexError):
        scene.render(24)


def test_unknown_condition_is_rejected_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="normal"):
        generate_sequence(0, "foggy")


def test_plain_and_lasher_layouts_round_trip(tmp_path) -> None:
    seq = generate_sequence(11, "occlusion", num_frames=5, size=(128, 96), config=SyntheticConfig(target_size=(16, 24)))
    plain = write_sequence(tmp_path / "plain", seq, layout="plain", ext="png")
    rgb0 = cv2.cvtColor(cv2.imread(str(plain / "rgb" / "000000.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(rgb0, seq.rgb[0])
    tir0 = cv2.imread(str(plain / "thermal" / "000004.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(tir0, seq.thermal[4, :, :, 0])
    gt = np.loadtxt(plain / "groundtruth.txt", delimiter=",")
    assert np.allclose(gt, seq.boxes, atol=1e-4)
    lasher = write_sequence(tmp_path / "lasher", seq, layout="lasher")
    assert sorted(p.name for p in (lasher / "visible").iterdir())[0] == "v000000.jpg"
    assert len(list((lasher / "infrared").iterdir())) == 5
    assert (lasher / "init.txt").read_text() == (lasher / "infrared.txt").read_text()


def test_write_benchmark_makes_one_folder_per_condition_and_seed(tmp_path) -> None:
    cfg = SyntheticConfig(num_frames=3, width=96, height=96, target_size=(12, 20))
    names = write_benchmark(tmp_path, seeds=[1, 2], conditions=["dark", "crossover"], config=cfg)
    assert names == ["syn_dark_00001", "syn_dark_00002", "syn_crossover_00001", "syn_crossover_00002"]
    assert (tmp_path / "list.txt").read_text().split() == names
    assert all((tmp_path / n / "init.txt").exists() for n in names)


def test_distractors_confuse_one_modality_but_the_other_tells_them_apart() -> None:
    """Colour twins are cold, so thermal separates them; they carry their own pattern, so RGB can too (during
    thermal crossover it must). Hot spots are as warm as the target but look different in RGB."""
    cfg = SyntheticConfig()
    for seed in range(6):
        scene = SyntheticScene(seed)
        target = scene.target
        twins = scene.distractors[:cfg.num_colour_twins]
        hot = scene.distractors[cfg.num_colour_twins:]
        assert len(twins) == cfg.num_colour_twins and len(hot) == cfg.num_hot_spots
        for twin in twins:
            assert twin.heat < 10 <= cfg.target_heat[0] <= target.heat
            assert np.abs(twin.texture - target.texture).mean() > 15  # not a pixel copy of the target
        for spot in hot:
            assert cfg.target_heat[0] <= spot.heat <= cfg.target_heat[1]
            assert np.abs(spot.texture - target.texture).mean() > 15


def test_objects_are_more_saturated_than_the_muted_background_in_most_scenes() -> None:
    standing_out = 0
    for seed in range(8):
        scene = SyntheticScene(seed)
        rgb, _ = scene.render(0)
        sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
        standing_out += int(np.median(sat[_inside(scene.boxes[0])]) > 2 * np.median(sat))
    assert standing_out >= 6
