"""The embedded demonstration model (what the node, `ckd track` and `make demo` load without a checkpoint):
it tracks synthetic scenes it never saw, and during thermal crossover it finds the target through RGB."""
from __future__ import annotations

import numpy as np
import pytest

from ckd_ros.data.synthetic import CONDITIONS, generate_sequence
from ckd_ros.model import load_default_model
from ckd_ros.tracking import CKDTracker
from ckd_ros.training.evaluate_synthetic import success_auc, track_sequence

# held out from training (scene seeds 0-4999) and from the README's scores (100000-100031)
SEEDS = (100100, 100101, 100102)


@pytest.fixture(scope="module")
def auc_by_condition() -> dict[str, float]:
    tracker = CKDTracker(load_default_model())
    out = {}
    for condition in CONDITIONS:
        scores = []
        for seed in SEEDS:
            seq = generate_sequence(seed, condition, num_frames=40)
            scores.append(success_auc(track_sequence(tracker, seq.rgb, seq.thermal, seq.boxes), seq.boxes))
        out[condition] = float(np.mean(scores))
    return out


def test_the_embedded_model_tracks_unseen_scenes_in_every_condition(auc_by_condition) -> None:
    # measured when the model was committed (epoch 140): normal 0.67, dark 0.66, glare 0.58, crossover 0.66,
    # occlusion 0.57 (the same run at epoch 80: 0.64, 0.63, 0.60, 0.59, 0.52)
    for condition in ("normal", "dark", "glare"):
        assert auc_by_condition[condition] > 0.55, auc_by_condition
    assert auc_by_condition["occlusion"] > 0.45, auc_by_condition
    assert np.mean(list(auc_by_condition.values())) > 0.5, auc_by_condition


def test_during_thermal_crossover_the_embedded_model_still_finds_the_target_through_rgb(auc_by_condition) -> None:
    # the thermal-only model of the same recipe scores 0.05 on crossover (README); 0.4 needs RGB
    assert auc_by_condition["crossover"] > 0.4, auc_by_condition
