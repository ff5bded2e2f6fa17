"""The PyTorch CKD network computes the reference implementation's function (INTERFACE.md §7)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ckd_ros.model import ModelConfig, ctr_point_mask, load_checkpoint

INPUTS = ("template_rgb", "template_tir", "search_rgb", "search_tir")
MAPS = ("score_map", "size_map", "offset_map", "pred_boxes")


def small_config(reference_dir, mce: bool) -> ModelConfig:
    cfg = json.loads((reference_dir / "config.json").read_text())
    bb, head = cfg["backbone"], cfg["head"]
    c = ModelConfig(embed_dim=bb["embed_dim"], depth=bb["depth"], num_heads=bb["num_heads"],
                    mlp_ratio=bb["mlp_ratio"], patch_size=bb["patch_size"], template_size=cfg["template_size"],
                    search_size=cfg["search_size"], head_channels=head["num_channels"])
    return c.with_ce(cfg["mce"]["CE_LOC"], tuple(cfg["mce"]["CE_KEEP_RATIO"])) if mce else c


@pytest.fixture(scope="module")
def inputs(reference_dir):
    data = np.load(reference_dir / "inputs.npz")
    return [torch.from_numpy(data[k]) for k in INPUTS]


def run(reference_dir, inputs, mce: bool, dtype: torch.dtype) -> dict:
    config = small_config(reference_dir, mce)
    net = load_checkpoint(reference_dir / "ckd_small.pth.tar", config=config).to(dtype)
    mask = ctr_point_mask(config) if mce else None
    with torch.no_grad():
        return net(*[x.to(dtype) for x in inputs], ce_template_mask=mask)


@pytest.mark.parametrize("mce", [False, True], ids=["ce_off", "mce"])
def test_float64_forward_matches_reference_maps_within_1e_9(reference_dir, inputs, mce):
    ref = np.load(reference_dir / ("forward_mce.npz" if mce else "forward_ce_off.npz"))
    out = run(reference_dir, inputs, mce, torch.float64)
    for key in MAPS + ("backbone_feat",):
        assert out[key].dtype == torch.float64
        np.testing.assert_allclose(out[key].numpy(), ref[f"{key}_f64"], rtol=0, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("mce", [False, True], ids=["ce_off", "mce"])
def test_float32_forward_matches_reference_maps_within_1e_5(reference_dir, inputs, mce):
    ref = np.load(reference_dir / ("forward_mce.npz" if mce else "forward_ce_off.npz"))
    out = run(reference_dir, inputs, mce, torch.float32)
    assert out["score_map"].shape == (1, 1, 16, 16) and out["size_map"].shape == (1, 2, 16, 16)
    assert out["offset_map"].shape == (1, 2, 16, 16) and out["pred_boxes"].shape == (1, 1, 4)
    for key in MAPS:
        np.testing.assert_allclose(out[key].numpy(), ref[f"{key}_f32"], rtol=0, atol=1e-5, err_msg=key)
    # the reference op sequence is reproduced exactly, so in practice the match is bit-for-bit
    assert np.abs(out["score_map"].numpy() - ref["score_map_f32"]).max() < 1e-7


def test_mce_keeps_and_removes_the_reference_token_sets_at_every_ce_layer_in_float64(reference_dir, inputs):
    ref = np.load(reference_dir / "forward_mce.npz")
    out = run(reference_dir, inputs, True, torch.float64)
    assert [k.shape[1] for k in out["ce_kept"]] == [180, 126, 89]
    for j, (kept, removed) in enumerate(zip(out["ce_kept"], out["ce_removed"])):
        assert set(kept[0].tolist()) == set(ref[f"mce_kept_idx_ce{j}_f64"][0].tolist()), f"CE layer {j}"
        assert set(removed[0].tolist()) == set(ref[f"mce_removed_idx_ce{j}_f64"][0].tolist()), f"CE layer {j}"
        # kept order is descending score, as in the reference (it fixes later float32 summation order)
        np.testing.assert_array_equal(kept.numpy(), ref[f"mce_kept_idx_ce{j}_f64"])
        np.testing.assert_allclose(out["ce_scores"][j].numpy(), ref[f"mce_score_ce{j}_f64"], rtol=0, atol=1e-12)


def test_eliminated_search_positions_reach_the_head_as_exact_zeros(reference_dir, inputs):
    out = run(reference_dir, inputs, True, torch.float32)
    removed = torch.cat(out["ce_removed"], dim=1)[0]
    search = out["backbone_feat"][0, 64:]
    assert removed.numel() == 256 - 89
    assert torch.count_nonzero(search[removed]) == 0
    kept = out["ce_kept"][-1][0]
    assert bool((search[kept].abs().sum(dim=1) > 0).all())


def test_ctr_point_mask_selects_only_template_token_27_for_the_8x8_grid():
    mask = ctr_point_mask(ModelConfig(), batch=2)
    assert mask.shape == (2, 64) and mask.dtype == torch.bool
    assert mask.sum().item() == 2 and mask[:, 27].all()


def test_paper_config_defaults_and_mce_preset_follow_the_paper():
    c = ModelConfig()
    assert (c.embed_dim, c.depth, c.num_heads, c.mlp_ratio, c.patch_size) == (768, 12, 12, 4.0, 16)
    assert (c.template_size, c.search_size, c.head_channels, c.ce_loc) == (128, 256, 256, ())
    assert (c.template_grid, c.search_grid) == (8, 16)
    m = ModelConfig.paper_mce()
    assert m.ce_loc == (3, 6, 9) and m.ce_keep_ratio == (0.7, 0.7, 0.7)
    assert m.search_tokens_per_stage() == [256, 180, 126, 89]
    assert ModelConfig.from_dict(m.to_dict()) == m


def test_invalid_configs_are_rejected_with_the_reason():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ModelConfig(embed_dim=100, num_heads=12)
    with pytest.raises(ValueError, match="differ in length"):
        ModelConfig(ce_loc=(3, 6), ce_keep_ratio=(0.7,))
    with pytest.raises(ValueError, match=r"ce_loc .* block indices"):
        ModelConfig(ce_loc=(12,), ce_keep_ratio=(0.7,))


def test_forward_rejects_inputs_of_the_wrong_size(reference_dir, inputs):
    net = load_checkpoint(reference_dir / "ckd_small.pth.tar", config=small_config(reference_dir, False))
    with pytest.raises(ValueError, match=r"search_rgb must have shape \(B, 3, 256, 256\)"):
        net(inputs[0], inputs[1], inputs[2][..., :128, :128], inputs[3])


def test_search_mask_zeroes_patch_embeddings_before_the_positional_embedding(reference_dir, inputs):
    net = load_checkpoint(reference_dir / "ckd_small.pth.tar", config=small_config(reference_dir, False))
    bb = net.rgb_branch
    mask = torch.zeros(1, 256, dtype=torch.bool)
    mask[0, [0, 17, 255]] = True
    with torch.no_grad():
        t = bb.embed(inputs[0], inputs[2], mask)
        t0 = bb.embed(inputs[0], inputs[2])
    assert torch.equal(t[0, 64 + 17], bb.pos_embed_x[0, 17])
    assert torch.equal(t[0, :64], t0[0, :64]) and torch.equal(t[0, 64 + 1], t0[0, 64 + 1])
    with torch.no_grad():
        out, feats = bb(inputs[0], inputs[2], return_block_outputs=True)
    assert len(feats) == 4 and feats[-1].shape == (1, 320, 64)
    assert torch.allclose(out, bb.norm(feats[-1]))
