"""The CKD training network: gradient contract of the distillation losses, masking, key layout, init."""
from __future__ import annotations

import torch

from ckd_ros.model import ModelConfig
from ckd_ros.training.losses import content_loss, style_loss
from ckd_ros.training.network import CKDTrainingNet, load_tracking_init

TINY = ModelConfig(embed_dim=32, depth=2, num_heads=2, template_size=32, search_size=64, head_channels=16)


def _inputs(b: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 3, 32, 32, generator=g), torch.randn(b, 3, 32, 32, generator=g),
            torch.randn(b, 3, 64, 64, generator=g), torch.randn(b, 3, 64, 64, generator=g))


def _mask(b: int = 2) -> torch.Tensor:
    m = torch.zeros(b, 16, dtype=torch.bool)
    m[0, [1, 5, 9, 12]] = True
    m[1, [0, 2, 3, 15]] = True
    return m


def _grads(net: torch.nn.Module, prefix: str) -> list[torch.Tensor]:
    return [p.grad for n, p in net.named_parameters() if n.startswith(prefix)]


def _nonzero(grads: list) -> bool:
    return any(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_content_loss_does_not_reach_the_teachers_but_reaches_the_students() -> None:
    torch.manual_seed(0)
    net = CKDTrainingNet(TINY)
    out = net(*_inputs(), search_mask=_mask())
    (f_rgb, f_tir), (g_rgb, g_tir) = out["student_feats"], out["teacher_feats"]
    (content_loss(f_rgb, g_rgb) + content_loss(f_tir, g_tir)).backward()
    assert not _nonzero(_grads(net, "teacher_rgb.")) and not _nonzero(_grads(net, "teacher_tir."))
    assert _nonzero(_grads(net, "rgb_branch.")) and _nonzero(_grads(net, "tir_branch."))


def test_style_loss_reaches_both_students_and_no_teacher() -> None:
    torch.manual_seed(0)
    net = CKDTrainingNet(TINY)
    out = net(*_inputs(), search_mask=_mask())
    style_loss(*out["student_feats"]).backward()
    assert _nonzero(_grads(net, "rgb_branch.")) and _nonzero(_grads(net, "tir_branch."))
    assert not _nonzero(_grads(net, "teacher_rgb.")) and not _nonzero(_grads(net, "teacher_tir."))


def test_masked_search_positions_are_zeroed_identically_in_both_students_and_teachers_see_everything() -> None:
    torch.manual_seed(0)
    net = CKDTrainingNet(TINY)
    # capture what enters the blocks: embedding after masking and positional embedding
    seen: dict[str, torch.Tensor] = {}
    for name in ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir"):
        bb = getattr(net, name)
        bb.blocks[0].register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0].detach()))
    mask = _mask()
    net(*_inputs(), search_mask=mask)
    n_t = TINY.num_template_tokens
    for name in ("rgb_branch", "tir_branch"):
        bb = getattr(net, name)
        search = seen[name][:, n_t:]
        pos = bb.pos_embed_x.detach().expand_as(search)
        # masked positions carry only the positional embedding (patch embedding exactly zero)
        assert torch.equal(search[mask], pos[mask])
        assert not torch.allclose(search[~mask], pos[~mask])
        template = seen[name][:, :n_t]
        assert not torch.allclose(template, bb.pos_embed_z.detach().expand_as(template))
    for name in ("teacher_rgb", "teacher_tir"):
        bb = getattr(net, name)
        search = seen[name][:, n_t:]
        pos = bb.pos_embed_x.detach().expand_as(search)
        assert not torch.isclose(search, pos).all(dim=-1).any()


def test_training_state_dict_follows_the_official_layout_and_exports_an_inference_net() -> None:
    net = CKDTrainingNet(TINY)
    prefixes = []
    for k in net.state_dict():
        p = k.split(".")[0]
        if not prefixes or prefixes[-1] != p:
            prefixes.append(p)
    assert prefixes == ["rgb_branch", "tir_branch", "box_head", "teacher_rgb", "teacher_tir", "box_head_v",
                        "box_head_i"]
    assert net.box_head.conv1_ctr[0].weight.shape[1] == 64 and net.box_head_v.conv1_ctr[0].weight.shape[1] == 32
    inf = net.to_inference().eval()
    net.eval()
    x = _inputs()
    with torch.no_grad():
        a = inf(*x)["score_map"]
        b = net(*x, with_teachers=False)["fused"]["score_map"]
    assert torch.allclose(a, b, atol=1e-6)


def test_tracking_checkpoint_init_resizes_positions_and_duplicates_the_head() -> None:
    src_cfg = ModelConfig(embed_dim=32, depth=2, num_heads=2, template_size=48, search_size=96, head_channels=16)
    src = CKDTrainingNet(src_cfg)
    sd = {"backbone." + k: v for k, v in src.teacher_rgb.state_dict().items()}
    sd.update({"box_head." + k: v for k, v in src.box_head_v.state_dict().items()})
    sd["backbone.template_segment_pos_embed"] = torch.full((1, 1, 32), 0.5)
    net = CKDTrainingNet(TINY)
    report = load_tracking_init(net, {"net": sd})
    assert "teacher_tir.blocks.1.mlp.fc2.weight" in report["loaded"]
    for name in ("rgb_branch", "tir_branch", "teacher_rgb", "teacher_tir"):
        assert torch.equal(getattr(net, name).blocks[0].attn.qkv.weight, src.teacher_rgb.blocks[0].attn.qkv.weight)
    assert net.rgb_branch.pos_embed_x.shape == (1, 16, 32)
    # a constant positional table stays constant after resizing; the segment embedding is added in
    const = torch.ones(1, 9, 32)
    sd["backbone.pos_embed_z"] = const
    load_tracking_init(net, {"net": sd})
    assert torch.allclose(net.teacher_tir.pos_embed_z, torch.full((1, 4, 32), 1.5))
    w = src.box_head_v.conv1_ctr[0].weight
    assert torch.equal(net.box_head.conv1_ctr[0].weight, torch.cat([w, w], 1))
    assert torch.equal(net.box_head_i.conv1_ctr[0].weight, w)


def test_drop_path_rises_linearly_over_depth_acts_in_training_only_and_keeps_the_expectation() -> None:
    from ckd_ros.model.vit import ViTBackbone, drop_path

    bb = ViTBackbone(ModelConfig(embed_dim=32, depth=4, num_heads=2, template_size=32, search_size=64,
                                 head_channels=16))
    bb.set_drop_path(0.1)
    assert [round(b.drop_path_rate, 6) for b in bb.blocks] == [0.0, round(0.1 / 3, 6), round(0.2 / 3, 6), 0.1]
    z, _, x, _ = _inputs()
    bb.eval()
    assert torch.equal(bb(z, x), bb(z, x))  # inference: no randomness, the reference arithmetic
    bb.train()
    bb.set_drop_path(0.9)  # a rate at which some residual branch is surely dropped in this small batch
    torch.manual_seed(1)
    a = bb(z, x)
    torch.manual_seed(2)
    assert not torch.equal(a, bb(z, x))
    # whole samples are dropped, survivors rescaled: the mean over many draws is the input
    branch = torch.ones(20000, 3, 4)
    torch.manual_seed(0)
    out = drop_path(branch, 0.25, training=True)
    per_sample = out[:, 0, 0]
    assert torch.equal(per_sample.unique(), torch.tensor([0.0, 1.0 / 0.75]))
    assert torch.all(out == per_sample[:, None, None])
    assert abs(float(out.mean()) - 1.0) < 0.02
    import pytest
    with pytest.raises(ValueError, match="drop-path"):
        bb.set_drop_path(1.0)


def test_the_training_network_gets_the_paper_drop_path_on_all_four_backbones() -> None:
    from ckd_ros.training.config import DataConfig, TrainConfig
    from ckd_ros.training.trainer import build_network

    cfg = TrainConfig(model=dict(embed_dim=32, depth=2, num_heads=2, template_size=32, search_size=64,
                                 head_channels=16), data=DataConfig(kind="synthetic"))
    assert cfg.drop_path == 0.1
    net = build_network(cfg, log=lambda *_: None)
    for bb in (net.rgb_branch, net.tir_branch, net.teacher_rgb, net.teacher_tir):
        assert [b.drop_path_rate for b in bb.blocks] == [0.0, 0.1]


def _initialised_from(tmp_path, state_dict, log=lambda *_: None) -> CKDTrainingNet:
    """build_network with `init` pointing at `state_dict` saved as a CKD checkpoint."""
    from ckd_ros.model import save_checkpoint
    from ckd_ros.training.config import DataConfig, TrainConfig
    from ckd_ros.training.trainer import build_network

    path = tmp_path / "init.pth.tar"
    save_checkpoint(state_dict, path, TINY)
    cfg = TrainConfig(model=dict(embed_dim=32, depth=2, num_heads=2, template_size=32, search_size=64,
                                 head_channels=16), data=DataConfig(kind="synthetic"), init=str(path))
    return build_network(cfg, log=log)


def test_fine_tuning_from_an_inference_export_starts_each_teacher_as_its_modality_student(tmp_path) -> None:
    src = CKDTrainingNet(TINY)
    said: list[str] = []
    net = _initialised_from(tmp_path, src.inference_state_dict(), said.append)
    for student, teacher, source in (("rgb_branch", "teacher_rgb", src.rgb_branch),
                                     ("tir_branch", "teacher_tir", src.tir_branch)):
        for k, v in source.state_dict().items():
            assert torch.equal(getattr(net, student).state_dict()[k], v)
            assert torch.equal(getattr(net, teacher).state_dict()[k], v), (teacher, k)
    # copies, not aliases: the teachers train on their own
    assert net.teacher_rgb.blocks[0].attn.qkv.weight is not net.rgb_branch.blocks[0].attn.qkv.weight
    assert any("teacher" in line for line in said)
    # the content loss therefore starts at zero: teacher and student see the same unmasked input
    net.eval()
    with torch.no_grad():
        out = net(*_inputs(), search_mask=None)
    assert float(content_loss(out["student_feats"][0], out["teacher_feats"][0])) < 1e-10


def test_a_training_checkpoint_keeps_its_own_teachers(tmp_path) -> None:
    src = CKDTrainingNet(TINY)
    net = _initialised_from(tmp_path, src.state_dict())
    assert torch.equal(net.teacher_tir.blocks[1].mlp.fc1.weight, src.teacher_tir.blocks[1].mlp.fc1.weight)
    assert not torch.equal(net.teacher_tir.blocks[1].mlp.fc1.weight, src.tir_branch.blocks[1].mlp.fc1.weight)


def test_modality_dropout_hides_one_student_from_the_fused_head_only() -> None:
    net = CKDTrainingNet(TINY).eval()
    x = _inputs()
    keep = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    with torch.no_grad():
        full = net(*x)
        dropped = net(*x, modality_keep=keep)
        # sample 0 with its RGB search image replaced: the fused head must not notice, the RGB student must
        other = list(x)
        other[2] = x[2].clone()
        other[2][0] = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(9))
        dropped_other = net(*other, modality_keep=keep)
    assert torch.equal(dropped["fused"]["score_map"][1], full["fused"]["score_map"][1])
    assert not torch.allclose(dropped["fused"]["score_map"][0], full["fused"]["score_map"][0])
    assert torch.allclose(dropped_other["fused"]["score_map"][0], dropped["fused"]["score_map"][0])
    assert not torch.allclose(dropped_other["student_feats"][0][-1][0], dropped["student_feats"][0][-1][0])
    # distillation sees the students unchanged, and teachers are untouched
    for a, b in zip(dropped["student_feats"][0] + dropped["teacher_feats"][1],
                    full["student_feats"][0] + full["teacher_feats"][1]):
        assert torch.equal(a, b)
