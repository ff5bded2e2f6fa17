"""Checkpoints: the official layout loads (paper-size and small), our own files round-trip, and every file
that cannot be used is refused with a message that says why."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from ckd_ros.model import (CheckpointError, CKDNet, ModelConfig, infer_config, load_checkpoint, save_checkpoint,
                           seeded_state_dict, state_dict_sha256)
from ckd_ros.model.weights import inference_shapes, training_only_shapes

VITB_SHA256 = "168ae335377fff21d9a230048665d190939501d505efeaed817ec21b1d66aca5"
SMALL = ModelConfig(embed_dim=64, depth=4, num_heads=4, head_channels=32)


def read_key_list(path: Path) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        out[key] = tuple(int(s) for s in re.findall(r"\d+", shape))
    return out


def test_paper_network_has_exactly_the_official_keys_shapes_and_order(reference_dir):
    assert list(inference_shapes(ModelConfig()).items()) == \
        list(read_key_list(reference_dir / "vitb_state_dict_keys.txt").items())
    training = read_key_list(reference_dir / "vitb_state_dict_keys_training.txt")
    expected = {**inference_shapes(ModelConfig()), **training_only_shapes(ModelConfig())}
    assert expected == training


@pytest.mark.slow
def test_seeded_vitb_matches_the_published_fingerprint_and_round_trips_through_the_official_format(
        reference_dir, tmp_path):
    sd = seeded_state_dict(ModelConfig(), seed=2024)
    assert state_dict_sha256(sd) == VITB_SHA256
    path = tmp_path / "vitb.pth.tar"
    torch.save({"net": sd, "net_type": "OSTrack_CKD", "epoch": 1}, path)  # official layout, no config
    raw = torch.load(path, weights_only=True)["net"]
    assert list(raw) == list(read_key_list(reference_dir / "vitb_state_dict_keys.txt"))
    net = load_checkpoint(path)
    assert net.config == ModelConfig() and not net.training
    assert state_dict_sha256(net.state_dict()) == VITB_SHA256
    del raw, sd
    path.unlink()


def test_small_official_checkpoint_ignores_teacher_keys_and_matches_its_fingerprint(reference_dir):
    net = load_checkpoint(reference_dir / "ckd_small.pth.tar", config=SMALL)
    assert state_dict_sha256(net.state_dict()) == \
        "56fdf2d7d027a3a10061ae7ce6b4327a734fa31caef37891e605c7d1d9c9aa28"
    assert not any(k.startswith(("teacher", "box_head_v", "box_head_i")) for k in net.state_dict())


def test_architecture_is_inferred_from_shapes_with_64_dim_heads_when_nothing_says_otherwise(reference_dir):
    sd = torch.load(reference_dir / "ckd_small.pth.tar", weights_only=True)["net"]
    c = infer_config(sd)
    assert (c.embed_dim, c.depth, c.head_channels, c.mlp_ratio, c.num_heads) == (64, 4, 32, 4.0, 1)
    assert (c.patch_size, c.template_size, c.search_size) == (16, 128, 256)


def test_own_checkpoint_embeds_its_config_and_loads_without_one(tmp_path):
    torch.manual_seed(0)
    net = CKDNet(SMALL.with_ce((1, 2, 3), 0.7))
    path = save_checkpoint(net, tmp_path / "own.pth.tar", epoch=3)
    payload = torch.load(path, weights_only=True)
    assert payload["config"]["num_heads"] == 4 and payload["epoch"] == 3 and set(payload) >= {"net", "config"}
    back = load_checkpoint(path)
    assert back.config == net.config
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_given_config_that_disagrees_with_the_file_names_the_mismatching_keys_and_shapes(reference_dir):
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(reference_dir / "ckd_small.pth.tar", config=ModelConfig(
            embed_dim=64, depth=4, num_heads=4, head_channels=64))
    msg = str(e.value)
    assert "box_head.conv1_ctr.0.weight: [32, 128, 3, 3] vs [64, 128, 3, 3]" in msg
    with pytest.raises(CheckpointError, match=r"file keys the config does not have.*blocks\.3"):
        load_checkpoint(reference_dir / "ckd_small.pth.tar", config=ModelConfig(embed_dim=64, depth=3,
                                                                                 num_heads=4, head_channels=32))


def test_missing_file_is_refused_as_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth.tar")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "nope.pth.tar")


def test_truncated_file_is_refused_as_truncated_or_corrupt(reference_dir, tmp_path):
    data = (reference_dir / "ckd_small.pth.tar").read_bytes()
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    resnet_like = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}
    path = tmp_path / "resnet.pth.tar"
    torch.save({"net": resnet_like}, path)
    with pytest.raises(CheckpointError, match=r"not a CKD network .*rgb_branch\.\*"):
        load_checkpoint(path)
    ostrack_like = {"backbone.pos_embed": torch.zeros(1, 197, 768), "box_head.conv1_ctr.0.weight": torch.zeros(1)}
    torch.save({"net": ostrack_like}, path)
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(path)


def _side_effect(marker: str) -> None:  # what a malicious checkpoint would run on load
    Path(marker).write_text("code ran")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_side_effect, (self.marker,))


def test_file_whose_unpickling_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth.tar"
    torch.save({"net": {"rgb_branch.x": torch.zeros(1)}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="arbitrary Python objects or code") as e:
        load_checkpoint(path)
    assert "_side_effect" in str(e.value)
    assert not marker.exists()
    legacy = tmp_path / "legacy.pth"
    with legacy.open("wb") as f:
        pickle.dump({"net": _Exploit(marker)}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(legacy)
    assert not marker.exists()


def test_non_finite_weights_are_refused(tmp_path):
    net = CKDNet(SMALL)
    sd = net.state_dict()
    sd["box_head.conv5_ctr.bias"] = torch.tensor([float("nan")])
    path = save_checkpoint(sd, tmp_path / "nan.pth.tar", SMALL)
    with pytest.raises(CheckpointError, match=r"non-finite .*conv5_ctr\.bias"):
        load_checkpoint(path)


def test_missing_default_model_raises_a_clear_file_not_found(monkeypatch, tmp_path):
    import ckd_ros.model.default as default

    monkeypatch.setattr(default, "default_checkpoint_path", lambda: tmp_path / "absent.pth.tar")
    with pytest.raises(FileNotFoundError, match="default model .* is missing"):
        default.load_default_model()


def test_paper_mce_places_elimination_at_a_quarter_half_and_three_quarters_of_the_depth() -> None:
    from ckd_ros.model import ModelConfig

    assert ModelConfig.paper_mce().ce_loc == (3, 6, 9)
    assert ModelConfig.paper_mce().ce_keep_ratio == (0.7, 0.7, 0.7)
    assert ModelConfig(depth=4, embed_dim=64, num_heads=4).mce_layers() == (1, 2, 3)
    assert ModelConfig(depth=2, embed_dim=64, num_heads=4).mce_layers() == (1,)
    assert ModelConfig(depth=1, embed_dim=64, num_heads=4).mce_layers() == (0,)
    assert ModelConfig.paper_mce(ce_loc=(2,), ce_keep_ratio=(0.5,)).ce_loc == (2,)
