"""``run_trial``: the one place that wires data, training stages, evaluation, cost and the record.

Callable from a notebook with no Ray running. The Ray layer only schedules it, forwards its
``report`` calls and moves the checkpoint folder it writes.

Out folder layout::

    out_dir/
      record.json          TrialRecord (config, hash, metrics per split, cost, times, versions)
      config.yaml          the full config that made it
      checkpoints/         stage checkpoints (resume after a crash)
      gallery.npz          a few test images with their maps, for the report's heatmap gallery
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from suite import metrics as M
from suite.config import Config, save_yaml
from suite.cost import TrainingMemory, count_params, measure_cost
from suite.data import load_category
from suite.data.streaming import (
    FileImages,
    ImageCache,
    ImageSource,
    ImagesLike,
    SpilledImages,
    iter_batches,
    read_masks,
    sequential_batches,
    spill,
)
from suite.data.augment import pseudo_anomalies
from suite.data.synthetic import natural_defects
from suite.data.val_anomalies import hard_defects
from suite.data.val_shifts import iter_shifted, shifted_normals
from suite.methods.base import TrainContext, TrainedMethod
from suite.methods.registry import method_spec
from suite.records import RECORD_NAME, TrialRecord, code_versions, node_info, write_record
from suite.stage_cache import StageCache
from suite.training import resolve_device, seed_everything

ReportFn = Callable[[dict[str, Any], "str | None"], None]

def method_trainer(method: str) -> Callable[[TrainContext], TrainedMethod]:
    """The registered trainer of ``method`` (``suite.methods.registry``)."""
    return method_spec(method).train_fn()


def validation_anomalies(
    val_images: ImagesLike, donors: ImagesLike, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor]:
    """The synthetic anomalies of the validation set: images (A, 3, H, W) and masks (A, 1, H, W),
    ``A = max(1, round(len(val_images) * data.val_anomaly_ratio))``; see ``validation_set``.

    ``donors`` (the train normals) may be an ``ImageSource``: "augment" reads its first 8 images,
    "hard" picks one donor per anomaly at random, so it gets the source as an array spilled to a
    temporary file and memory-mapped (only the donors it picks are read), unless the whole source
    fits the source's cache budget, in which case it is loaded (and cached) as before.
    """
    gen = torch.Generator().manual_seed(cfg.runtime.seed + 7919)
    n_anom = max(1, int(round(len(val_images) * cfg.data.val_anomaly_ratio)))
    src = val_images[torch.arange(n_anom) % len(val_images)]
    if cfg.data.val_anomalies == "hard":
        with _donor_array(donors) as donor_array:
            defective, defect_masks = hard_defects(
                src.numpy(), donor_array, seed=cfg.runtime.seed + 7919, difficulty=cfg.data.val_difficulty
            )
        return torch.from_numpy(defective), torch.from_numpy(defect_masks)
    if cfg.data.val_anomalies == "natural":
        defective, defect_masks = natural_defects(src.numpy(), seed=cfg.runtime.seed + 7919)
        return torch.from_numpy(defective), torch.from_numpy(defect_masks)
    return pseudo_anomalies(src, cfg.augment, gen, donors=donors[: min(8, len(donors))])


@contextlib.contextmanager
def _donor_array(donors: ImagesLike):
    """``donors`` as a numpy array for ``hard_defects`` (which indexes it at random)."""
    if isinstance(donors, torch.Tensor):
        yield donors.numpy()
        return
    if donors.nbytes <= donors.cache.budget_bytes:
        yield donors.materialize().numpy()
        return
    with tempfile.TemporaryDirectory(prefix="rcsuite-donors-") as folder:
        path = spill(donors, len(donors), donors.image_size, Path(folder) / "donors.npy")
        array = np.load(path, mmap_mode="r")
        try:
            yield array
        finally:
            del array  # unmapped before the folder goes


def validation_set(
    val_images: ImagesLike, donors: ImagesLike, cfg: Config
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Held-out train normals plus synthetic anomalies made from them (never test images).

    ``data.val_anomalies``: "hard" paints small, faint or thin defects, local deformations and
    parts misplaced from other normals (``suite.data.val_anomalies``, ``data.val_difficulty``);
    "natural" paints stains, holes and bent scratches (easy: they saturate); neither is a training
    corruption of any method. "augment" uses RcAE's training corruption (easiest for RcAE).

    Returns images (M, 3, H, W), masks (M, 1, H, W), labels (M,). Deterministic given the seed.
    (``run_trial`` builds the same set with ``validation_anomalies`` and keeps it on disk.)
    """
    anomalous, masks = validation_anomalies(val_images, donors, cfg)
    normals = val_images if isinstance(val_images, torch.Tensor) else val_images.materialize()
    normals = torch.cat([normals, shifted_normals(normals, cfg.data.val_shifts)])  # data.val_shifts: label 0
    images = torch.cat([normals, anomalous])
    all_masks = torch.cat([torch.zeros_like(masks[:1]).expand(len(normals), -1, -1, -1), masks])
    labels = torch.cat([torch.zeros(len(normals)), torch.ones(len(anomalous))]).long()
    return images, all_masks, labels


def streamed_validation_set(
    val_images: ImageSource, donors: ImagesLike, cfg: Config, folder: str | Path
) -> tuple[SpilledImages, np.ndarray, np.ndarray]:
    """``validation_set`` with the images written to ``folder/val_images.npy`` and read back
    through ``val_images``' cache (a ``SpilledImages``), masks as uint8: the same values, but only
    the anomalies are ever all in memory at once (``hard_defects`` paints them in one call)."""
    anomalous, masks = validation_anomalies(val_images, donors, cfg)
    n_val, n_anom = len(val_images) * (1 + len(cfg.data.val_shifts)), len(anomalous)

    def rows():
        yield from val_images
        yield from iter_shifted(val_images, cfg.data.val_shifts)  # shifted held-out normals (label 0)
        yield from anomalous

    path = spill(rows(), n_val + n_anom, val_images.image_size, Path(folder) / "val_images.npy")
    size = val_images.image_size
    all_masks = np.zeros((n_val + n_anom, 1, size, size), np.uint8)
    all_masks[n_val:] = masks.numpy()
    labels = np.concatenate([np.zeros(n_val, np.int64), np.ones(n_anom, np.int64)])
    return SpilledImages(path, val_images.cache, val_images.num_workers), all_masks, labels


@torch.inference_mode()
def predict_all(
    method: TrainedMethod, images: ImagesLike, device: torch.device, batch_size: int = 16, keep: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Maps (N, H, W) and scores (N,) for all images (a tensor or an ``ImageSource``, read
    ``batch_size`` at a time); with ``keep``, every output array too (all of them: for a few
    images only, e.g. the gallery's)."""
    maps, scores = [], []
    kept: dict[str, list[np.ndarray]] = {}
    for batch in iter_batches(images, sequential_batches(len(images), batch_size)):
        out = method.predict(batch.to(device))
        maps.append(out["map"][:, 0].float().cpu().numpy())
        scores.append(method.score(out["map"]).float().cpu().numpy())
        if keep:
            for key, value in out.items():
                kept.setdefault(key, []).append(value.float().cpu().numpy())
    return (
        np.concatenate(maps),
        np.concatenate(scores),
        {k: np.concatenate(v) for k, v in kept.items()},
    )


EXTRA_MAX_SIZE = 256  # extra maps (variants, diagnostics) are scored at most at this size


@torch.inference_mode()
def extra_metrics(
    method: TrainedMethod, images: ImagesLike, masks: np.ndarray, labels: np.ndarray, device: torch.device,
    with_aupro: bool, batch_size: int = 16,
) -> dict[str, dict[str, float]]:
    """Metrics of every ``method.extra_maps`` map: name -> metrics. Image scores use
    ``method.score``; maps larger than ``EXTRA_MAX_SIZE`` are area-downsampled (masks by max
    pooling) so the pixel metrics stay cheap at 1024 px."""
    if method.extra_maps is None:
        return {}
    collected: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for batch in iter_batches(images, sequential_batches(len(images), batch_size)):
        for name, amap in method.extra_maps(batch.to(device)).items():
            scores = method.score(amap).float().cpu().numpy()
            factor = max(1, amap.shape[-1] // EXTRA_MAX_SIZE)
            if factor > 1:
                amap = torch.nn.functional.avg_pool2d(amap, factor)
            maps_, scores_ = collected.setdefault(name, ([], []))
            maps_.append(amap[:, 0].float().cpu().numpy())
            scores_.append(scores)
    out: dict[str, dict[str, float]] = {}
    for name, (maps_, scores_) in collected.items():
        maps_arr = np.concatenate(maps_)
        small = masks.reshape(len(maps_arr), *masks.shape[-2:])
        factor = small.shape[-1] // maps_arr.shape[-1]
        if factor > 1:
            pooled = torch.nn.functional.max_pool2d(torch.from_numpy(small[:, None].astype(np.float32)), factor)
            small = pooled[:, 0].numpy()
        aupro = with_aupro and name.startswith("variant:")
        out[name] = evaluate(maps_arr, np.concatenate(scores_), small, labels, with_aupro=aupro)
    return out


def _split_extras(extras: dict[str, dict[str, float]], split: str, record: TrialRecord) -> None:
    """File ``extra_metrics`` output into ``record.scorings`` and ``record.diagnostics``."""
    for name, values in extras.items():
        prefix, _, key = name.partition(":")
        if prefix == "variant":
            record.scorings.setdefault(key, {})[split] = values
        elif prefix == "diag":
            family, _, step = key.partition("@")
            record.diagnostics.setdefault(split, {}).setdefault(family, {})[step] = {
                k: values[k] for k in ("i_auroc", "p_auroc") if k in values
            }


def evaluate(
    maps: np.ndarray, scores: np.ndarray, masks: np.ndarray, labels: np.ndarray, with_aupro: bool
) -> dict[str, float]:
    out: dict[str, float] = {}
    out.update(M.image_metrics(labels, scores))
    if masks.any():
        out.update(M.pixel_metrics(masks.reshape(maps.shape), maps, with_aupro=with_aupro))
    return {k: float(v) for k, v in out.items()}


def gallery_indices(scores: np.ndarray, labels: np.ndarray, count: int) -> list[int]:
    """The best and worst scored test images: top anomalous, lowest anomalous, top normal, ..."""
    if count <= 0:
        return []
    order = np.argsort(-scores, kind="stable")
    anomalous = [i for i in order if labels[i] == 1]
    normal = [i for i in order if labels[i] == 0]
    picks: list[int] = []
    pools = [anomalous, anomalous[::-1], normal]
    while len(picks) < count and any(pools):
        for pool in pools:
            while pool and pool[0] in picks:
                pool.pop(0)
            if pool and len(picks) < count:
                picks.append(int(pool.pop(0)))
    return picks


def _save_gallery(path: Path, idx: list[int], images, masks, labels, names, maps, scores, kept, steps) -> None:
    """``kept``: ``predict_all(..., keep=True)`` outputs of the images ``idx``, in that order."""
    arrays: dict[str, Any] = {
        "images": images[idx].numpy().astype(np.float16),
        "masks": masks[idx, 0].astype(np.uint8),
        "labels": labels[idx],
        "names": np.array([names[i] for i in idx]),
        "maps": maps[idx].astype(np.float16),
        "scores": scores[idx],
        "steps": np.array(steps),
    }
    for key in ("recons", "details"):
        if key in kept:
            arrays[key] = np.clip(kept[key], 0, 1).astype(np.float16)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _measure_cost(method: TrainedMethod, cfg: Config, device: torch.device) -> dict[str, Any]:
    size = cfg.data.image_size
    example = torch.rand(1, 3, size, size, device=device)
    params = sum(count_params(m) for m in method.modules.values())

    def infer(x: torch.Tensor) -> torch.Tensor:
        return method.predict(x)["map"]

    cost = measure_cost(infer, example, batch_sizes=(1, 8), repeats=5, warmup=2, device=str(device), params=params)
    return cost


def run_trial(
    config: Config,
    out_dir: str | Path,
    report: ReportFn | None = None,
    *,
    stage_cache: str | Path | None = None,
    trial_id: str | None = None,
    sweep: str | None = None,
    node: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    ablation: dict[str, str] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrialRecord:
    """Train the stages ``config`` enables, evaluate on validation and test, write the record.

    ``report(metrics, checkpoint_dir)`` is called after periodic validations (when
    ``train.eval_every`` > 0) and once at the end with the final validation metrics (keys
    prefixed ``val_``) — this is where a sweep's scheduler plugs in. Stage checkpoints in
    ``out_dir/checkpoints`` make a re-run resume; ``stage_cache`` shares finished stages between
    trials. Failures are recorded (status "failed", the error) and re-raised. ``ablation``
    (``{"table": ..., "row": ...}`` of an ablation space's row) is stored in the record.
    ``on_epoch(entry)`` gets each per-epoch ``record.history`` entry as it is made (stage, epoch,
    loss, and the ``val_*`` metrics on validation epochs): a sweep's trackers plug in here.
    """
    cfg = config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    record = TrialRecord(
        config=cfg.to_dict(),
        config_hash=cfg.hash(),
        dataset=cfg.data.dataset,
        category=cfg.data.category,
        method=cfg.model.method,
        trial_id=trial_id,
        sweep=sweep,
        seed=cfg.runtime.seed,
        node={**node_info(), **(node or {})},
        versions=code_versions(),
        ablation=dict(ablation or {}),
        started=time.time(),
    )
    try:
        with tempfile.TemporaryDirectory(prefix="rcsuite-trial-") as scratch:  # the spilled validation set
            _run(cfg, out, ckpt_dir, record, report, stage_cache, log, on_epoch, scratch)
    except BaseException as err:
        record.status = "failed"
        record.error = f"{type(err).__name__}: {err}"
        record.history.append({"traceback": traceback.format_exc(limit=8)})
        raise
    finally:
        record.finished = time.time()
        write_record(record, out / RECORD_NAME)
    return record


def device_info(device: torch.device) -> dict[str, Any]:
    """The record's ``device``: the resolved device string (``cpu``, ``cuda:0``), the CUDA device
    name, and torch's intra-op thread count."""
    info: dict[str, Any] = {"device": str(device), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["device"] = f"cuda:{index}"
        info["name"] = torch.cuda.get_device_name(index)
    return info


def _run(cfg, out, ckpt_dir, record, report, stage_cache, log, on_epoch, scratch) -> None:
    t_start = time.perf_counter()
    if cfg.runtime.threads > 0:
        torch.set_num_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    record.device = device_info(device)
    seed_everything(cfg.runtime.seed)  # model initialisation; each stage draws from its own generator

    t0 = time.perf_counter()
    splits = load_category(cfg.data, seed=cfg.runtime.seed)
    size = cfg.data.image_size
    # Every split streams from disk through one cache of runtime.cache_mb (suite.data.streaming):
    # with a budget holding them all (the default at small sizes) each image is decoded once, as
    # when load_arrays held them; at 1024 px memory stays within the budget.
    cache = ImageCache.from_mb(cfg.runtime.cache_mb)
    workers = cfg.runtime.num_workers
    train_images = FileImages(splits.train, size, cache, workers)
    calib_images = FileImages(splits.calib, size, cache, workers) if splits.calib else None
    test_images = FileImages(splits.test, size, cache, workers)
    test_m, test_y = read_masks(splits.test, size), test_images.labels
    val = None
    if splits.val:
        val = streamed_validation_set(FileImages(splits.val, size, cache, workers), train_images, cfg, scratch)
    record.stage_times["data"] = time.perf_counter() - t0
    record.cost["n_train"], record.cost["n_val"] = len(train_images), len(splits.val)
    record.cost["n_test"], record.cost["n_calib"] = len(test_images), len(splits.calib)
    log(
        f"[data] {cfg.data.dataset}/{cfg.data.category}: {len(train_images)} train, {len(splits.val)} val normals, "
        f"{len(splits.calib)} calibration normals, "
        f"{len(test_images)} test at {size}px ({record.stage_times['data']:.1f}s)"
    )

    iteration = 0

    def val_metrics(method_like: TrainedMethod) -> dict[str, float]:
        assert val is not None
        vmaps, vscores, _ = predict_all(method_like, val[0], device)
        return evaluate(vmaps, vscores, val[1], val[2], with_aupro=False)

    def on_epoch_end(stage: str, epoch: int, loss: float, probe: TrainedMethod | None) -> None:
        nonlocal iteration
        every = cfg.train.eval_every
        entry: dict[str, Any] = {"stage": stage, "epoch": epoch, "loss": loss}
        validated = bool(every and epoch % every == 0 and probe is not None and val is not None)
        if validated:
            # A cheap stage-so-far validation, so schedulers (ASHA) can stop weak trials early.
            iteration += 1
            entry.update({f"val_{k}": v for k, v in val_metrics(probe).items()})
            entry["iteration"] = iteration
        if on_epoch is not None:
            on_epoch(dict(entry))  # before report: a scheduler may stop the trial inside it
        if validated and report is not None:
            report({**entry, "final": False}, str(ckpt_dir))
        record.history.append(entry)

    ctx = TrainContext(
        cfg=cfg,
        device=device,
        train_images=train_images,
        calib_images=calib_images,
        checkpoint_dir=ckpt_dir,
        stage_cache=StageCache(stage_cache) if stage_cache else None,
        log=log,
        on_epoch_end=on_epoch_end,
    )
    train_memory = TrainingMemory(device).start() if cfg.eval.cost else None
    method = method_trainer(cfg.model.method)(ctx)
    if train_memory is not None:
        record.cost.update(train_memory.stop())
    record.stage_times.update(method.stage_times)
    record.info.update(method.info)

    t0 = time.perf_counter()
    if val is not None:
        record.metrics["val"] = val_metrics(method)
    tmaps, tscores, _ = predict_all(method, test_images, device)
    record.metrics["test"] = evaluate(tmaps, tscores, test_m, test_y, with_aupro=cfg.eval.aupro)
    if val is not None:
        _split_extras(extra_metrics(method, val[0], val[1], val[2], device, False), "val", record)
    _split_extras(extra_metrics(method, test_images, test_m, test_y, device, cfg.eval.aupro), "test", record)
    record.stage_times["eval"] = time.perf_counter() - t0
    if cfg.eval.save_maps > 0:
        idx = gallery_indices(tscores, test_y, cfg.eval.save_maps)
        # Outputs (reconstructions per step) only for the gallery's few images: kept for the whole
        # test set they would be depth x its size.
        kept = predict_all(method, test_images[idx], device, keep=True)[2] if idx else {}
        names = [f"{s.defect}/{Path(s.image_path).name}" for s in splits.test]
        _save_gallery(out / "gallery.npz", idx, test_images, test_m, test_y, names, tmaps, tscores,
                      kept, method.steps)
        record.artifacts["gallery"] = "gallery.npz"
    record.info["image_cache"] = cache.stats()
    if cfg.eval.cost:
        record.cost.update(_measure_cost(method, cfg, device))
    record.stage_times["total"] = time.perf_counter() - t_start
    log(_summary_line(record))
    if report is not None:
        final = {f"val_{k}": v for k, v in record.metrics.get("val", {}).items()}
        final.update({"iteration": iteration + 1, "final": True})
        for key in ("latency_ms", "gflops", "params"):
            if key in record.cost:
                final[key] = record.cost[key]
        report(final, str(ckpt_dir))


def _summary_line(record: TrialRecord) -> str:
    parts = []
    for split, values in record.metrics.items():
        vals = " ".join(f"{k}={v:.3f}" for k, v in values.items() if k in ("i_auroc", "p_auroc", "aupro"))
        parts.append(f"{split}: {vals}")
    return f"[result] {record.dataset}/{record.category} {record.method}: " + " | ".join(parts)


def format_metrics_table(record: TrialRecord) -> str:
    """A small text table of a record's metrics (rows = splits), for the CLI."""
    names = ["i_auroc", "p_auroc", "aupro", "i_ap", "p_ap", "i_f1max", "p_f1max"]
    lines = ["split  " + "  ".join(f"{n:>8}" for n in names)]
    for split, values in record.metrics.items():
        cells = "  ".join(f"{values[n]:8.4f}" if n in values else f"{'-':>8}" for n in names)
        lines.append(f"{split:<6} {cells}")
    times = ", ".join(f"{k} {v:.1f}s" for k, v in record.stage_times.items())
    lines.append(f"time: {times}")
    if "latency_ms" in record.cost:
        lines.append(
            f"cost: params {record.cost.get('params', 0):,}, {record.cost.get('gflops', 0):.3f} GFLOPs, "
            f"{record.cost['latency_ms']:.1f} ms/image"
        )
    return "\n".join(lines)
