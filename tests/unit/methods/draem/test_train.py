"""DRAEM trainer: a tiny joint training through ``train`` with a handmade TrainContext."""

import numpy as np
import pytest
import torch

from suite.config import build_config
from suite.methods.base import TrainContext
from suite.methods.draem.train import train


def tiny_context(tmp_path, overrides=None, n=16):
    cfg = build_config(
        preset="tiny",
        overrides={"model.method": "draem", "runtime.device": "cpu", "train.stage1.epochs": 2,
                   "train.stage1.batch_size": 8, **(overrides or {})},
    )
    images = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    logs = []
    ctx = TrainContext(cfg=cfg, device=torch.device("cpu"), train_images=images, checkpoint_dir=tmp_path,
                       log=logs.append)
    return ctx, logs


def test_tiny_training_returns_maps_and_finite_scores(tmp_path):
    torch.manual_seed(0)
    ctx, logs = tiny_context(tmp_path)
    method = train(ctx)
    assert (tmp_path / "stage1.pt").exists()
    assert any("[stage1] 2 epochs" in line for line in logs)
    assert method.info["texture_source"] == "procedural" and method.info["texture_count"] == 64
    assert method.info["stage1_from_cache"] is False
    assert set(method.modules) == {"draem"}
    assert not any(p.requires_grad for p in method.modules["draem"].parameters())
    x = torch.rand(5, 3, 32, 32)
    with torch.inference_mode():
        out = method.predict(x)
        scores = method.score(out["map"])
    assert out["map"].shape == (5, 1, 32, 32)
    assert out["recons"].shape == (5, 1, 3, 32, 32)
    assert out["map"].min() >= 0 and out["map"].max() <= 1
    assert scores.shape == (5,) and torch.isfinite(scores).all()


def test_a_last_batch_of_one_image_trains_at_32_px(tmp_path):
    # 9 images in batches of 8: the last batch holds one image and the discriminator's
    # bottleneck is 1x1 at 32 px (BatchNorm would fail on a single value per channel).
    torch.manual_seed(0)
    ctx, _ = tiny_context(tmp_path, overrides={"train.stage1.epochs": 1}, n=9)
    assert ctx.cfg.draem.disc_levels == 5
    method = train(ctx)
    with torch.inference_mode():
        assert torch.isfinite(method.score(method.predict(torch.rand(1, 3, 32, 32))["map"])).all()


def test_training_is_deterministic_under_the_seed(tmp_path):
    maps = []
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    for run in range(2):
        torch.manual_seed(0)  # model initialisation (run_training seeds it the same way)
        ctx, _ = tiny_context(tmp_path / f"run{run}", overrides={"train.stage1.epochs": 1})
        method = train(ctx)
        with torch.inference_mode():
            maps.append(method.predict(x)["map"])
    torch.testing.assert_close(maps[0], maps[1])


def test_texture_folder_is_used_and_counted(tmp_path):
    from PIL import Image

    folder = tmp_path / "textures" / "banded"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"t{i}.png")
    torch.manual_seed(0)
    ctx, _ = tiny_context(tmp_path / "ckpt", overrides={"draem.texture_root": str(tmp_path / "textures"),
                                                        "draem.texture_max_count": 2, "train.stage1.epochs": 1},
                          n=8)
    method = train(ctx)
    assert method.info["texture_source"].startswith("folder ")
    assert method.info["texture_count"] == 2


def test_missing_texture_folder_names_the_key(tmp_path):
    ctx, _ = tiny_context(tmp_path, overrides={"draem.texture_root": str(tmp_path / "nowhere")}, n=4)
    with pytest.raises(FileNotFoundError, match="draem.texture_root"):
        train(ctx)


def test_second_trial_loads_the_stage_from_the_cache(tmp_path):
    from suite.stage_cache import StageCache

    cache = StageCache(tmp_path / "cache")
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = []
    for run in range(2):
        torch.manual_seed(run)  # a different initialisation: the cache must replace it
        ctx, _ = tiny_context(tmp_path / f"run{run}", overrides={"train.stage1.epochs": 1}, n=8)
        ctx.stage_cache = cache
        method = train(ctx)
        assert method.info["stage1_from_cache"] is (run == 1)
        with torch.inference_mode():
            maps.append(method.predict(x)["map"])
    torch.testing.assert_close(maps[0], maps[1])
