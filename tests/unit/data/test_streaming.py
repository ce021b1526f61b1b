"""Images streamed from disk (suite/data/streaming.py): exact values, the cache budget, workers,
and training / validation / prediction results equal to the everything-in-RAM path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from suite.config import StageConfig, build_config
from suite.data.common import Sample, load_arrays
from suite.data.streaming import (
    FileImages,
    ImageCache,
    SpilledImages,
    compact,
    expand,
    iter_batches,
    read_masks,
    spill,
)
from suite.training import stage_generator, train_stage


def write_images(folder, n: int, size: int = 20, seed: int = 0) -> list[Sample]:
    """``n`` random PNGs (RGB, some gray, one 16-bit gray) of ``size`` px, defective ones with masks."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        if i % 5 == 3:
            Image.fromarray(rng.integers(0, 65535, (size, size)).astype(np.uint16)).save(path)
        elif i % 5 == 1:
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8), "L").save(path)
        else:
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
        mask = None
        if i % 4 == 2:
            mask = folder / f"{i:03d}_mask.png"
            m = np.zeros((size, size), np.uint8)
            m[2:9, 3:12] = 255
            Image.fromarray(m).save(mask)
        samples.append(Sample(str(path), None if mask is None else str(mask), int(mask is not None), "x", "c"))
    return samples


@pytest.fixture
def samples(tmp_path):
    return write_images(tmp_path / "imgs", 12)


def image_bytes(size: int) -> int:
    return 3 * size * size  # an 8-bit image in the cache (uint8)


# ----------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("cache_mb", [0.0, 64.0])
def test_decoded_values_equal_load_arrays(samples, cache_mb):
    expected, masks, labels = load_arrays(samples, 16)
    source = FileImages(samples, 16, ImageCache.from_mb(cache_mb))
    for _ in range(2):  # the second pass comes from the cache (when there is one)
        assert torch.equal(source[:], torch.from_numpy(expected))
        assert torch.equal(source[torch.tensor([5, 0, 5])], torch.from_numpy(expected[[5, 0, 5]]))
        assert torch.equal(source[3], torch.from_numpy(expected[3]))
    assert source.shape == expected.shape and len(source) == len(expected)
    assert np.array_equal(source.labels, labels)
    assert np.array_equal(read_masks(samples, 16), masks.astype(np.uint8))
    assert (len(source.cache) == len(samples)) == (cache_mb > 0)


def test_compact_is_exact_and_small_for_8_bit_images(samples):
    rgb, sixteen = load_arrays([samples[0]], 16)[0][0], load_arrays([samples[3]], 16)[0][0]
    assert compact(rgb).dtype == np.uint8 and np.array_equal(expand(compact(rgb)), rgb)
    assert compact(sixteen).dtype == np.float32 and np.array_equal(expand(compact(sixteen)), sixteen)
    off_grid = rgb.copy()
    off_grid[0, 0, 0] += 1e-3
    assert compact(off_grid).dtype == np.float32


def test_returned_tensors_are_copies(samples):
    source = FileImages(samples, 16, ImageCache.from_mb(64))
    first = source[0]
    first += 1.0  # a caller writing into its batch must not change the cached image
    assert torch.equal(source[0], torch.from_numpy(load_arrays(samples[:1], 16)[0][0]))


def test_implicit_numpy_conversion_refuses_to_load_everything(samples):
    with pytest.raises(TypeError, match="source\\[:\\]"):
        np.asarray(FileImages(samples, 16))


# ----------------------------------------------------------------------------------------------
# the cache


def test_cache_never_exceeds_its_budget_and_evicts_least_recently_used(samples):
    budget = 3 * image_bytes(16)  # three 8-bit images
    cache = ImageCache(budget)
    rgb = [i for i, s in enumerate(samples) if i % 5 not in (1, 3)]  # plain RGB files
    source = FileImages(samples, 16, cache)
    for i in rgb:
        source.image(i)
        assert cache.nbytes <= budget
    assert cache.peak_nbytes <= budget and len(cache) == 3 and cache.evictions == len(rgb) - 3
    a, b, c = (source._key(i) for i in rgb[-3:])
    source.image(rgb[-3])  # a becomes the most recently used ...
    source.image(rgb[0])  # ... so b is evicted for the newcomer
    assert a in cache and b not in cache and c in cache and source._key(rgb[0]) in cache


def test_entry_larger_than_the_budget_is_not_stored():
    cache = ImageCache(100)
    assert not cache.put("big", np.zeros(101, np.uint8))
    assert cache.put("small", np.zeros(60, np.uint8)) and cache.put("other", np.zeros(40, np.uint8))
    assert cache.nbytes == 100 and cache.put("third", np.zeros(50, np.uint8)) and "small" not in cache


def test_zero_budget_decodes_every_time(samples):
    source = FileImages(samples, 16, ImageCache(0))
    source[:]
    source[:]
    assert len(source.cache) == 0 and source.cache.misses == 2 * len(samples)


# ----------------------------------------------------------------------------------------------
# batches and workers


def test_two_workers_yield_the_same_batches_as_none(samples):
    batches = [[3, 1, 4], [1, 5], [9, 2, 6, 11], [0]]
    reference = [torch.from_numpy(load_arrays([samples[i] for i in b], 16)[0]) for b in batches]
    for workers, cache_mb in ((0, 0.0), (2, 0.0), (2, 64.0)):
        source = FileImages(samples, 16, ImageCache.from_mb(cache_mb), num_workers=workers)
        got = list(source.batches(batches))
        assert len(got) == len(reference)
        for a, b in zip(got, reference):
            assert torch.equal(a, b)
        if cache_mb:  # the main process kept what the workers decoded
            assert len(source.cache) == len({i for b in batches for i in b})
            assert all(torch.equal(a, b) for a, b in zip(source.batches(batches), reference))


def test_iter_batches_treats_tensors_and_sources_alike(samples):
    tensor = torch.from_numpy(load_arrays(samples, 16)[0])
    idx = [torch.tensor([2, 7]), torch.tensor([0])]
    for a, b in zip(iter_batches(tensor, idx), iter_batches(FileImages(samples, 16), idx)):
        assert torch.equal(a, b)


def test_spilled_images_round_trip(tmp_path):
    images = torch.rand(5, 3, 8, 8)
    path = spill(iter(images), 5, 8, tmp_path / "x.npy")
    assert np.array_equal(np.load(path), images.numpy())
    source = SpilledImages(path, ImageCache(10_000))
    assert torch.equal(source[:], images) and torch.equal(source[torch.tensor([4, 1])], images[[4, 1]])
    assert torch.equal(source[:], images)  # from the cache (float32 values stay float32)
    with pytest.raises(ValueError, match="wrote 2 images"):
        spill(iter(images[:2]), 5, 8, tmp_path / "y.npy")


# ----------------------------------------------------------------------------------------------
# results equal the in-memory path


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


def _loss(model, batch, g):
    noise = torch.rand(batch.shape, generator=g)  # the generator's draws interleave with the order
    return ((model(batch + 0.1 * noise) - batch) ** 2).mean()


@pytest.mark.parametrize("workers, cache_mb", [(0, 0.0), (0, 64.0), (2, 0.0)])
def test_training_on_a_stream_equals_training_on_a_tensor(samples, workers, cache_mb):
    cfg = StageConfig(epochs=3, lr=1e-2, batch_size=5)
    results = []
    for data in (torch.from_numpy(load_arrays(samples, 16)[0]),
                 FileImages(samples, 16, ImageCache.from_mb(cache_mb), num_workers=workers)):
        model = Tiny()
        result = train_stage("s", model, _loss, data, cfg, device=torch.device("cpu"),
                             generator=stage_generator(0, "s"), log=lambda _: None)
        results.append((result.losses, model.state_dict()))
    (losses_a, weights_a), (losses_b, weights_b) = results
    assert losses_a == losses_b and len(losses_a) == 3
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.mark.parametrize("kind", ["hard", "augment", "natural"])
@pytest.mark.parametrize("cache_mb", [0.0, 64.0])  # 0: hard's donors go through a spilled memmap
def test_streamed_validation_set_equals_the_in_memory_one(tmp_path, samples, kind, cache_mb):
    from suite.validation import streamed_validation_set, validation_set

    cfg = build_config(preset="tiny", overrides=[f"data.val_anomalies={kind}", "data.val_anomaly_ratio=1.5"])
    val, train = samples[:4], samples[4:]
    images, masks, labels = validation_set(torch.from_numpy(load_arrays(val, 32)[0]),
                                           torch.from_numpy(load_arrays(train, 32)[0]), cfg)
    cache = ImageCache.from_mb(cache_mb)
    s_images, s_masks, s_labels = streamed_validation_set(FileImages(val, 32, cache), FileImages(train, 32, cache),
                                                          cfg, tmp_path)
    assert torch.equal(s_images[:], images) and np.array_equal(s_masks, masks.numpy().astype(np.uint8))
    assert np.array_equal(s_labels, labels.numpy()) and masks.any()


def test_predict_all_on_a_stream_equals_a_tensor(samples):
    from suite.methods.base import TrainedMethod
    from suite.pipeline import predict_all

    method = TrainedMethod(predict=lambda x: {"map": x.mean(dim=1, keepdim=True), "recons": x[:, None]},
                           score=lambda m: m.flatten(1).max(dim=1).values, modules={})
    tensor = torch.from_numpy(load_arrays(samples, 16)[0])
    a = predict_all(method, tensor, torch.device("cpu"), batch_size=5, keep=True)
    b = predict_all(method, FileImages(samples, 16, num_workers=2), torch.device("cpu"), batch_size=5, keep=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(a[2]["recons"], b[2]["recons"])


@pytest.mark.slow  # run_training twice
def test_run_training_results_do_not_depend_on_the_cache_budget(tmp_path):
    from suite.pipeline import run_training

    records = []
    for cache_mb in (0, 2048):
        cfg = build_config(preset="tiny", overrides=[
            "train.stage1.epochs=1", "eval.cost=false", "eval.aupro=false", "runtime.device=cpu",
            "runtime.threads=1", f"runtime.cache_mb={cache_mb}", "eval.save_maps=1"])
        records.append(run_training(cfg, tmp_path / f"c{cache_mb}", log=lambda _: None))
    uncached, cached = records
    assert uncached.metrics == cached.metrics and uncached.scorings == cached.scorings
    assert [h.get("loss") for h in uncached.history] == [h.get("loss") for h in cached.history]
    assert uncached.info["image_cache"]["cache_entries"] == 0 and cached.info["image_cache"]["cache_entries"] > 0
    a, b = (np.load(tmp_path / f"c{c}" / "gallery.npz") for c in (0, 2048))
    assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_streamed_validation_set_with_shifted_normals_equals_the_in_memory_one(tmp_path, samples):
    from suite.validation import streamed_validation_set, validation_set

    cfg = build_config(preset="tiny", overrides=["data.val_anomalies=augment", "data.val_shifts=[gain0.92, gamma1.1]"])
    val, train = samples[:4], samples[4:]
    images, masks, labels = validation_set(torch.from_numpy(load_arrays(val, 32)[0]),
                                           torch.from_numpy(load_arrays(train, 32)[0]), cfg)
    cache = ImageCache.from_mb(64.0)
    s_images, s_masks, s_labels = streamed_validation_set(FileImages(val, 32, cache), FileImages(train, 32, cache),
                                                          cfg, tmp_path)
    assert len(images) == 3 * 4 + 4 and (labels[:12] == 0).all()
    assert torch.allclose(s_images[:], images, atol=1e-6) and np.array_equal(s_labels, labels.numpy())
    assert np.array_equal(s_masks, masks.numpy().astype(np.uint8))
