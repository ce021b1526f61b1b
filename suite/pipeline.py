"""``run_training``: the one place that wires data, training stages, evaluation, cost and the record.

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
from suite.data.streaming import FileImages, ImageCache, ImagesLike, iter_batches, read_masks, sequential_batches
from suite.gallery import save_gallery
from suite.methods.base import TrainContext, TrainedMethod
from suite.methods.registry import method_spec
from suite.records import RECORD_NAME, TrialRecord, code_versions, node_info, write_record
from suite.robustness import brightness_spearman, data_shift_info, evaluate_under_shifts
from suite.stage_cache import StageCache
from suite.throughput import StepBreakdown, inference_batch, prefetched
from suite.training import resolve_device, seed_everything
from suite.validation import streamed_validation_set

ReportFn = Callable[[dict[str, Any], "str | None"], None]

def method_trainer(method: str) -> Callable[[TrainContext], TrainedMethod]:
    """The registered trainer of ``method`` (``suite.methods.registry``)."""
    return method_spec(method).train_fn()


def _device_batches(images: ImagesLike, batch_size: int, device: torch.device, steps: StepBreakdown | None):
    """``images`` in chunks of ``batch_size`` on ``device``: read one chunk ahead by a thread and
    pinned on CUDA (the next chunk decodes while this one runs), timed into ``steps`` if given."""
    steps = steps or StepBreakdown(torch.device("cpu"))  # a throwaway host timer
    chunks = iter_batches(images, sequential_batches(len(images), batch_size))
    steps.wait_begins()
    for batch in prefetched(chunks, 0 if getattr(images, "num_workers", 0) else 1, pin=device.type == "cuda"):
        batch = batch.to(device, non_blocking=True)
        steps.data_ready()
        steps.inputs_built()
        yield batch
        steps.step_done(len(batch))


@torch.inference_mode()
def predict_all(
    method: TrainedMethod, images: ImagesLike, device: torch.device, batch_size: int = 16, keep: bool = False,
    steps: StepBreakdown | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Maps (N, H, W) and scores (N,) for all images (a tensor or an ``ImageSource``, read
    ``batch_size`` at a time; every map leaves the device before the next chunk); with ``keep``,
    every output array too (all of them: for a few images only, e.g. the gallery's)."""
    maps, scores = [], []
    kept: dict[str, list[np.ndarray]] = {}
    for batch in _device_batches(images, batch_size, device, steps):
        out = method.predict(batch)
        maps.append(out["map"][:, 0].float().cpu().numpy())
        scores.append(method.score(out["map"]).float().cpu().numpy())
        if keep:
            for key, value in out.items():
                kept.setdefault(key, []).append(value.float().cpu().numpy())
        del out
    return (
        np.concatenate(maps),
        np.concatenate(scores),
        {k: np.concatenate(v) for k, v in kept.items()},
    )


EXTRA_MAX_SIZE = 256  # extra maps (variants, diagnostics) are scored at most at this size


@torch.inference_mode()
def extra_metrics(
    method: TrainedMethod, images: ImagesLike, masks: np.ndarray, labels: np.ndarray, device: torch.device,
    with_aupro: bool, batch_size: int = 16, steps: StepBreakdown | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of every ``method.extra_maps`` map: name -> metrics. Image scores use
    ``method.score``; maps larger than ``EXTRA_MAX_SIZE`` are area-downsampled (masks by max
    pooling) so the pixel metrics stay cheap at 1024 px."""
    if method.extra_maps is None:
        return {}
    collected: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for batch in _device_batches(images, batch_size, device, steps):
        for name, amap in method.extra_maps(batch).items():
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
    save_gallery(path, arrays)


def _measure_cost(method: TrainedMethod, cfg: Config, device: torch.device) -> dict[str, Any]:
    size = cfg.data.image_size
    example = torch.rand(1, 3, size, size, device=device)
    params = sum(count_params(m) for m in method.modules.values())

    def infer(x: torch.Tensor) -> torch.Tensor:
        return method.predict(x)["map"]

    # The throughput batch (8) is capped by the inference chunk, so the cost never needs more
    # memory than the evaluation (at 1024 px and the default runtime.infer_mpx: batch 1).
    largest = min(8, inference_batch(size, cfg.runtime.infer_mpx))
    cost = measure_cost(infer, example, batch_sizes=(1, largest), repeats=5, warmup=2, device=str(device),
                        params=params)
    return cost


def run_training(
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
    trainings. Failures are recorded (status "failed", the error) and re-raised. ``ablation``
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
        with tempfile.TemporaryDirectory(prefix="rcsuite-training-") as scratch:  # the spilled validation set
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


# The name before issue 22 (a Tune trial covers many categories; this is one). Kept because method
# plugins and notebooks outside the suite may still import it; the suite itself uses run_training.
run_trial = run_training


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

    # issue 19: label-free data-shift check of all train-folder normals vs the test images, before training
    normals = FileImages(splits.train + splits.val + splits.calib, size, cache, workers)
    record.info["data_shift"], test_brightness = data_shift_info([normals], test_images, log)
    iteration = 0
    chunk = inference_batch(size, cfg.runtime.infer_mpx)  # evaluation's bounded batch

    def val_metrics(method_like: TrainedMethod, steps: StepBreakdown | None = None) -> dict[str, float]:
        assert val is not None
        vmaps, vscores, _ = predict_all(method_like, val[0], device, chunk, steps=steps)
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
        stage_peaks = [v["peak_allocated_mb"] for v in ctx.step_breakdown.stages.values() if "peak_allocated_mb" in v]
        if stage_peaks:  # each stage resets CUDA's peak statistics: the training peak is the largest
            record.cost["train_peak_cuda_mb"] = max(stage_peaks)
    record.stage_times.update(method.stage_times)
    record.info.update(method.info)

    t0 = time.perf_counter()
    steps = StepBreakdown(device).start()
    if val is not None:
        record.metrics["val"] = val_metrics(method, steps)
    tmaps, tscores, _ = predict_all(method, test_images, device, chunk, steps=steps)
    record.metrics["test"] = evaluate(tmaps, tscores, test_m, test_y, with_aupro=cfg.eval.aupro)
    if val is not None:
        _split_extras(extra_metrics(method, val[0], val[1], val[2], device, False, chunk, steps), "val", record)
    _split_extras(extra_metrics(method, test_images, test_m, test_y, device, cfg.eval.aupro, chunk, steps), "test",
                  record)
    record.info["score_brightness_spearman"] = brightness_spearman(tscores, test_brightness)  # issue 19, as eval.shifts
    record.shifts = evaluate_under_shifts(lambda x: predict_all(method, x, device, chunk)[:2], evaluate, test_images,
                                          test_m, test_y, cfg.eval.shifts, cfg.runtime.seed, cfg.eval.aupro, chunk)
    record.stage_times["eval"] = time.perf_counter() - t0
    ctx.step_breakdown.add("eval", steps.finish())
    record.step_breakdown = dict(ctx.step_breakdown.stages)
    if ctx.step_breakdown.notes:
        record.info["step_breakdown_notes"] = dict(ctx.step_breakdown.notes)
    if cfg.eval.save_maps > 0:
        idx = gallery_indices(tscores, test_y, cfg.eval.save_maps)
        # Outputs (reconstructions per step) only for the gallery's few images: kept for the whole
        # test set they would be depth x its size.
        kept = predict_all(method, test_images[idx], device, chunk, keep=True)[2] if idx else {}
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
