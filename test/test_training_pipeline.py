"""Training end to end on synthetic data: the loss goes down, `ckd train` writes resumable checkpoints in
the official layout that the inference loader and the tracker use directly."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from ckd_ros.data.synthetic import SyntheticConfig, SyntheticScene, generate_sequence
from ckd_ros.model import load_checkpoint
from ckd_ros.tracking import CKDTracker
from ckd_ros.training.cli import main as train_main
from ckd_ros.training.config import config_from_dict
from ckd_ros.training.data import PairBatches, SamplingConfig, SyntheticPairDataset, collate
from ckd_ros.training.trainer import build_network, build_optimizer, compute_losses

TINY_MODEL = dict(embed_dim=32, depth=2, num_heads=2, template_size=32, search_size=64, head_channels=16)
SMALL_SCENES = dict(width=160, height=128, num_frames=20, target_size=[14.0, 24.0])


def _config(tmp_path, **over):
    d = {"model": TINY_MODEL, "data": {"kind": "synthetic", "samples_per_epoch": 8, "num_workers": 0,
                                       "synthetic": SMALL_SCENES},
         "sampling": {"max_interval": 10},
         "optim": {"batch_size": 4, "epochs": 1, "lr_head": 1e-3, "lr_backbone": 5e-4, "grad_clip": 1.0},
         "output_dir": str(tmp_path / "run")}
    d.update(over)
    return d


def test_pairs_are_deterministic_per_index_and_boxes_lie_in_the_search_crop() -> None:
    ds = SyntheticPairDataset(SamplingConfig(template_size=32, search_size=64, patch_size=16, max_interval=10), 16,
                              range(100), synthetic=SyntheticConfig(**{**SMALL_SCENES, "target_size": (14.0, 24.0)}))
    a, b = ds[5], ds[5]
    for k in a:
        assert torch.equal(a[k], b[k])
    assert a["template_rgb"].shape == (3, 32, 32) and a["search_tir"].shape == (3, 64, 64)
    assert int(a["search_mask"].sum()) == 4  # 25 % of 16 search tokens
    for i in range(8):
        x, y, w, h = ds[i]["search_box"].tolist()
        # centre jitter 3 keeps the target centre within the search crop (factor 4)
        assert 0 <= x + w / 2 <= 1 and 0 <= y + h / 2 <= 1 and 0.05 < w < 0.6


class _RenderLog(SyntheticPairDataset):
    """Leaves a file `<block>_<pid>` each time a process builds a scene block."""

    def __init__(self, folder, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    def _block(self, block: int):
        if (self.epoch, block) not in self._cache:
            (self.folder / f"{block}_{os.getpid()}").touch()
        return super()._block(block)


def _builders(folder) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in folder.iterdir():
        block, pid = f.name.split("_")
        out.setdefault(block, set()).add(pid)
    return out


def test_worker_processes_give_the_serial_batches_and_build_each_scene_block_in_one_process(tmp_path) -> None:
    sampling = SamplingConfig(template_size=32, search_size=64, patch_size=16, max_interval=10)
    kw = dict(synthetic=SyntheticConfig(**SMALL_SCENES), samples_per_block=4,
              active_blocks=2)  # a span of 8 indices: two batches of 4 share two scenes
    serial = list(PairBatches(SyntheticPairDataset(sampling, 36, range(50), **kw), 4))
    spans, plain = tmp_path / "spans", tmp_path / "plain"
    spans.mkdir(), plain.mkdir()
    parallel = list(PairBatches(_RenderLog(spans, sampling, 36, range(50), **kw), 4, num_workers=2))
    assert len(serial) == len(parallel) == 9  # 36 // 4: the last span is half full
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    built = _builders(spans)
    assert len(built) == 10 and all(len(p) == 1 for p in built.values())
    # what it replaces: a loader fetching batch by batch builds every scene of a span in both workers
    list(torch.utils.data.DataLoader(_RenderLog(plain, sampling, 36, range(50), **kw), batch_size=4,
                                     num_workers=2, collate_fn=collate))
    assert any(len(p) == 2 for p in _builders(plain).values())


def _scene_conditions(ds: SyntheticPairDataset, blocks: int) -> list[str]:
    return [ds.scene_plan(b)[1] for b in range(blocks)]


def test_condition_weights_set_how_often_each_condition_is_drawn_and_their_absence_keeps_uniform_draws(
        tmp_path) -> None:
    weighted = config_from_dict(_config(tmp_path, data={
        "kind": "synthetic", "conditions": ["normal", "crossover"], "condition_weights": [1, 3]}))
    from ckd_ros.training.trainer import build_dataset

    drawn = _scene_conditions(build_dataset(weighted), 2000)
    assert 0.72 < drawn.count("crossover") / len(drawn) < 0.78  # 3 / 4
    only = config_from_dict(_config(tmp_path, data={
        "kind": "synthetic", "conditions": ["normal", "crossover"], "condition_weights": [0, 1]}))
    assert set(_scene_conditions(build_dataset(only), 50)) == {"crossover"}
    # unweighted runs keep their scenes (numpy's uniform draw), so older recipes still reproduce
    plain = config_from_dict(_config(tmp_path, data={"kind": "synthetic", "conditions": ["normal", "crossover"]}))
    rng = np.random.default_rng([plain.data.seed, 0, 1 << 40, 7])
    rng.choice(range(*plain.data.synthetic_seeds))
    assert _scene_conditions(build_dataset(plain), 8)[7] == str(rng.choice(["normal", "crossover"]))


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_condition_weights_must_give_one_non_negative_weight_per_condition(tmp_path, weights) -> None:
    with pytest.raises(ValueError, match="condition_weights"):
        config_from_dict(_config(tmp_path, data={"kind": "synthetic", "conditions": ["normal", "dark"],
                                                 "condition_weights": weights}))


def test_distractor_distance_is_the_nearest_look_alike_centre_distance_in_target_sizes() -> None:
    scene = SyntheticScene(3, "normal", SyntheticConfig(**SMALL_SCENES))
    tg = scene.target
    for i, o in enumerate(scene.distractors):  # park every distractor far away, then one beside the target
        o.cx, o.cy = tg.cx + 1000.0 * (i + 1), tg.cy.copy()
    scene.distractors[1].cx = tg.cx + tg.w  # one target width to the right
    assert np.allclose(scene.distractor_distance(), tg.w / np.sqrt(tg.w * tg.h))


def _close_share(ds: SyntheticPairDataset, blocks: int) -> float:
    shares = []
    for b in range(blocks):
        seed, condition, frames = ds.scene_plan(b)
        assert frames.max() - frames.min() <= ds.sampling.max_interval and len(set(frames.tolist())) == len(frames)
        d = SyntheticScene(seed, condition, ds.synthetic).distractor_distance()
        shares.append(float(np.mean(d[frames] < ds.close_call_distance)))
    return float(np.mean(shares))


def test_close_call_blocks_draw_mostly_frames_with_a_distractor_beside_the_target() -> None:
    scenes = SyntheticConfig(**{**SMALL_SCENES, "num_frames": 60})
    common = dict(sampling=SamplingConfig(max_interval=20), samples_per_epoch=16, seeds=range(50),
                  synthetic=scenes)
    plain = SyntheticPairDataset(**common, close_call_distance=1.0)
    close = SyntheticPairDataset(**common, close_call_prob=1.0, close_call_distance=1.0)
    assert _close_share(close, 24) > 0.7 and _close_share(plain, 24) < 0.4
    # the scene stream is untouched: with or without close calls, block b shows the same scene
    assert [plain.scene_plan(b)[:2] for b in range(10)] == [close.scene_plan(b)[:2] for b in range(10)]


@pytest.mark.parametrize("prob, distance", [(-0.1, 1.0), (1.5, 1.0), (0.5, 0.0), (0.5, float("nan"))])
def test_close_call_settings_are_checked_when_the_config_is_read(tmp_path, prob, distance) -> None:
    with pytest.raises(ValueError, match="close_call"):
        config_from_dict(_config(tmp_path, data={"kind": "synthetic", "close_call_prob": prob,
                                                 "close_call_distance": distance}))


@pytest.mark.parametrize("synthetic, match", [({"crossover_profile": "sunset"}, "crossover_profile"),
                                               ({"crosover_profile": "dusk"}, "crosover_profile")])
def test_generator_settings_are_checked_when_the_config_is_read(tmp_path, synthetic, match) -> None:
    with pytest.raises(ValueError, match=match):
        config_from_dict(_config(tmp_path, data={"kind": "synthetic", "synthetic": synthetic}))
    dusk = config_from_dict(_config(tmp_path), ["data.synthetic.crossover_profile=dusk"])
    assert dusk.data.synthetic_config().crossover_profile == "dusk"


@pytest.mark.slow
def test_a_few_training_steps_lower_the_loss(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = config_from_dict(_config(tmp_path))
    net = build_network(cfg)
    opt = build_optimizer(net, cfg)
    ds = SyntheticPairDataset(cfg.sampling, 8, range(100), synthetic=cfg.data.synthetic_config())
    batch = collate([ds[i] for i in range(8)])
    net.train()
    first = None
    for _ in range(12):
        loss, stats = compute_losses(net, batch, cfg.loss)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    last, _ = compute_losses(net, batch, cfg.loss)
    assert math.isfinite(float(last)) and float(last) < 0.8 * first


@pytest.mark.slow
def test_ckd_train_writes_resumable_checkpoints_that_load_and_track(tmp_path) -> None:
    import yaml

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(_config(tmp_path)))
    assert train_main(["--config", str(cfg_path), "--device", "cpu"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.pth.tar"
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert obj["epoch"] == 1 and any(k.startswith("teacher_tir.") for k in obj["net"])
    net = load_checkpoint(ckpt)
    assert net.config.search_size == 64
    seq = generate_sequence(123, "normal", num_frames=5, config=SyntheticConfig(**{**SMALL_SCENES,
                                                                                  "target_size": (14.0, 24.0)}))
    tracker = CKDTracker(net, device="cpu")
    tracker.initialize(seq.rgb[0], seq.thermal[0], tuple(seq.boxes[0]))
    for i in range(1, 5):
        box = tracker.track(seq.rgb[i], seq.thermal[i]).box
        assert np.all(np.isfinite(box)) and box[2] > 0 and box[3] > 0
    # resume continues from the saved epoch instead of starting over
    assert train_main(["--config", str(cfg_path), "--device", "cpu", "--resume", "--set", "optim.epochs=2"]) == 0
    obj2 = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert obj2["epoch"] == 2 and obj2["step"] == 4
    assert (tmp_path / "run" / "checkpoints" / "CKD_ep0002.pth.tar").is_file()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_bad_config_is_rejected_with_a_message(tmp_path, capsys) -> None:
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text("optim:\n  learning_rate: 1\n")
    assert train_main(["--config", str(cfg_path)]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_benchmark_folders_feed_training_pairs(tmp_path) -> None:
    from ckd_ros.data.synthetic import write_benchmark
    from ckd_ros.training.trainer import build_dataset

    scenes = SyntheticConfig(**{**SMALL_SCENES, "num_frames": 6, "target_size": (14.0, 24.0)})
    write_benchmark(tmp_path / "bench", seeds=[1, 2], conditions=["normal"], layout="lasher", config=scenes)
    cfg = config_from_dict(_config(tmp_path, data={"kind": "lasher", "root": str(tmp_path / "bench"),
                                                   "samples_per_epoch": 4, "num_workers": 0}))
    ds = build_dataset(cfg)
    sample = ds[3]
    assert sample["search_rgb"].shape == (3, 64, 64) and torch.isfinite(sample["search_box"]).all()
    x, y, w, h = sample["search_box"].tolist()
    assert 0 <= x + w / 2 <= 1 and 0 <= y + h / 2 <= 1


def test_modality_dropout_drops_one_modality_in_the_configured_share_of_samples(tmp_path) -> None:
    from ckd_ros.training.data import modality_keep

    rng = np.random.default_rng(0)
    keeps = np.stack([modality_keep(rng, 0.4).numpy() for _ in range(4000)])
    dropped = keeps.min(axis=1) == 0
    assert keeps.sum(axis=1).min() >= 1  # never both
    assert abs(dropped.mean() - 0.4) < 0.03
    assert abs((keeps[dropped, 0] == 0).mean() - 0.5) < 0.05  # RGB and thermal equally often
    off = SamplingConfig(template_size=32, search_size=64, patch_size=16)
    on = SamplingConfig(template_size=32, search_size=64, patch_size=16, modality_dropout=0.5)
    scenes = SyntheticConfig(**SMALL_SCENES)
    ds_off = SyntheticPairDataset(off, 8, range(3), synthetic=scenes, seed=1)
    ds_on = SyntheticPairDataset(on, 8, range(3), synthetic=scenes, seed=1)
    a, b = ds_off[3], ds_on[3]
    assert "modality_keep" not in a and b["modality_keep"].shape == (2,)
    for k in a:  # enabling it changes nothing else about a sample
        assert torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="modality_dropout"):
        SamplingConfig(modality_dropout=1.5)


def test_a_single_modality_batch_view_is_what_that_modality_s_own_dataset_yields() -> None:
    from ckd_ros.training.data import modality_view

    scenes = SyntheticConfig(**SMALL_SCENES)
    fused = SamplingConfig(template_size=32, search_size=64, patch_size=16, modality_dropout=0.3)
    base = SyntheticPairDataset(fused, 8, range(3), synthetic=scenes, seed=2)
    for modality in ("rgb", "tir"):
        own = SyntheticPairDataset(SamplingConfig(template_size=32, search_size=64, patch_size=16,
                                                  modality_dropout=0.3, modality=modality),
                                   8, range(3), synthetic=scenes, seed=2)
        idx = [0, 5, 7]
        view = modality_view(collate([base[i] for i in idx]), modality)
        ref = collate([own[i] for i in idx])
        assert set(view) == set(ref)
        for k in ref:
            assert torch.equal(view[k], ref[k]), (modality, k)
        # both students now see the one modality, which the fused batch did not
        assert torch.equal(view["search_rgb"], view["search_tir"])
    fused_batch = collate([base[i] for i in (0, 5, 7)])
    assert not torch.equal(fused_batch["search_rgb"], fused_batch["search_tir"])


def test_baselines_train_beside_the_fused_model_with_the_same_init_and_pairs(tmp_path) -> None:
    import yaml

    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(_config(tmp_path, baselines=["rgb", "tir"], export_inference="m.pth.tar")))
    assert train_main(["--config", str(cfg_path), "--device", "cpu"]) == 0
    run = tmp_path / "run"
    main = torch.load(run / "checkpoints" / "last.pth.tar", map_location="cpu", weights_only=True)
    assert main["train_config"]["sampling"]["modality"] == "rgbt"
    nets = {}
    for modality in ("rgb", "tir"):
        obj = torch.load(run / f"baseline_{modality}" / "checkpoints" / "last.pth.tar", map_location="cpu",
                         weights_only=True)
        # each baseline's checkpoint describes a plain single-modality run of the same recipe
        assert obj["train_config"]["sampling"]["modality"] == modality and obj["train_config"]["baselines"] == []
        assert obj["epoch"] == main["epoch"] == 1 and obj["step"] == main["step"] == 2
        assert load_checkpoint(run / f"baseline_{modality}" / "m.pth.tar").config.search_size == 64
        nets[modality] = obj["net"]
    # different inputs: after two steps the three networks differ
    key = "rgb_branch.blocks.0.attn.qkv.weight"
    assert not torch.equal(nets["rgb"][key], nets["tir"][key]) and not torch.equal(main["net"][key], nets["rgb"][key])
    # the fused run matches a run without baselines: sharing the pairs changes nothing for it
    solo = tmp_path / "solo.yaml"
    solo.write_text(yaml.safe_dump(_config(tmp_path, output_dir=str(tmp_path / "solo"))))
    assert train_main(["--config", str(solo), "--device", "cpu", "--set", "drop_path=0.0"]) == 0
    cfg_nodp = tmp_path / "nodp.yaml"
    cfg_nodp.write_text(yaml.safe_dump(_config(tmp_path, baselines=["rgb"], drop_path=0.0,
                                               output_dir=str(tmp_path / "with_rgb"))))
    assert train_main(["--config", str(cfg_nodp), "--device", "cpu"]) == 0
    a = torch.load(tmp_path / "solo" / "checkpoints" / "last.pth.tar", weights_only=True)["net"]
    b = torch.load(tmp_path / "with_rgb" / "checkpoints" / "last.pth.tar", weights_only=True)["net"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # the baselines alone (train_fused: false) train as they do beside the fused model: same pairs, same init
    only = tmp_path / "only.yaml"
    only.write_text(yaml.safe_dump(_config(tmp_path, baselines=["rgb"], drop_path=0.0, train_fused=False,
                                           output_dir=str(tmp_path / "only"))))
    assert train_main(["--config", str(only), "--device", "cpu"]) == 0
    assert not (tmp_path / "only" / "checkpoints").exists()
    beside = torch.load(tmp_path / "with_rgb" / "baseline_rgb" / "checkpoints" / "last.pth.tar", weights_only=True)
    alone = torch.load(tmp_path / "only" / "baseline_rgb" / "checkpoints" / "last.pth.tar", weights_only=True)
    assert alone["train_config"]["train_fused"] and alone["train_config"]["baselines"] == []
    for k in beside["net"]:
        assert torch.allclose(alone["net"][k], beside["net"][k], atol=1e-6), k
    # resuming needs every run at the same point
    (run / "baseline_tir" / "checkpoints" / "last.pth.tar").unlink()
    assert train_main(["--config", str(cfg_path), "--device", "cpu", "--resume", "--set", "optim.epochs=2"]) != 0


def test_baselines_start_from_the_fused_model_s_initial_weights(tmp_path) -> None:
    from ckd_ros.training.trainer import Trainer

    trainer = Trainer(config_from_dict(_config(tmp_path, baselines=["rgb", "tir"])), device="cpu")
    try:
        fused, *baselines = [run.net.state_dict() for run in trainer.runs]
        assert [run.modality for run in trainer.runs] == ["rgbt", "rgb", "tir"]
        for sd in baselines:
            assert sd.keys() == fused.keys()
            for k in fused:
                assert torch.equal(sd[k], fused[k]), k
    finally:
        trainer.close()


@pytest.mark.parametrize("over, match", [({"baselines": ["rgbt"]}, "baselines"),
                                          ({"baselines": ["rgb", "rgb"]}, "baselines"),
                                          ({"baselines": ["tir"], "sampling": {"modality": "rgb"}}, "rgbt"),
                                          ({"train_fused": False}, "baselines only")])
def test_baseline_settings_are_checked_when_the_config_is_read(tmp_path, over, match) -> None:
    with pytest.raises(ValueError, match=match):
        config_from_dict(_config(tmp_path, **over))


@pytest.mark.parametrize("ce", [False, True], ids=["head_only", "with_elimination"])
def test_stage_two_fine_tunes_the_fused_head_on_frozen_backbones(tmp_path, ce) -> None:
    import yaml

    stage1 = tmp_path / "s1.yaml"
    stage1.write_text(yaml.safe_dump(_config(tmp_path, output_dir=str(tmp_path / "s1"))))
    assert train_main(["--config", str(stage1), "--device", "cpu"]) == 0
    init = tmp_path / "s1" / "checkpoints" / "last.pth.tar"
    model = {**TINY_MODEL, **({"ce_loc": [1], "ce_keep_ratio": [0.5]} if ce else {})}
    stage2 = tmp_path / "s2.yaml"
    stage2.write_text(yaml.safe_dump(_config(tmp_path, model=model, stage="mce", init=str(init),
                                             output_dir=str(tmp_path / "s2"), export_inference="m.pth.tar")))
    assert train_main(["--config", str(stage2), "--device", "cpu", "--set", "optim.epochs=2"]) == 0
    before = torch.load(init, weights_only=True)["net"]
    after = torch.load(tmp_path / "s2" / "checkpoints" / "last.pth.tar", weights_only=True)["net"]
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # every change is in the fused head; its BatchNorm statistics and weights both moved
    assert changed and all(k.startswith("box_head.") for k in changed), sorted(changed)[:5]
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith(".0.weight") for k in changed)
    exported = load_checkpoint(tmp_path / "s2" / "m.pth.tar")
    assert exported.config.ce_loc == ((1,) if ce else ())


@pytest.mark.parametrize("bf16_kernels", [False, True], ids=["avx2_cpu", "bf16_cpu"])
def test_amp_on_a_cpu_without_bfloat16_kernels_trains_in_float32_and_says_so(tmp_path, capsys, monkeypatch,
                                                                                 bf16_kernels) -> None:
    # emulated bfloat16 ran a ViT-B forward 135x slower than float32 on an AVX2-only CPU: amp would slow it
    import ckd_ros.model.device as device
    import ckd_ros.training.trainer as trainer_module

    monkeypatch.setattr(device, "cpu_has_bf16_kernels", lambda: bf16_kernels)
    trainer = trainer_module.Trainer(config_from_dict(_config(tmp_path, amp=True)), device="cpu")
    try:
        assert [run.amp for run in trainer.runs] == [bf16_kernels]
        assert ("amp: true left off" in capsys.readouterr().err) is not bf16_kernels
    finally:
        trainer.close()
