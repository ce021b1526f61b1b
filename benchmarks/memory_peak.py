"""Peak memory per phase of the ``paper`` preset, activation checkpointing off and on (issue 20, item 3).

One training step of each stage (stage 1: RcAE at the deepest depth N; stage 2: the frozen RcAE,
then the DPN; stage 3: the frozen RcAE + DPN stack, then the CRD) and one evaluation chunk, with
the ``paper`` preset's networks (N = 5, widths 16/16/8, CRD at full resolution, 5 steps).
Inputs are built by the stage losses' own ``build_inputs`` outside the measured region; the
measured region is ``compute`` (forward, frozen passes in ``runtime.infer_mpx`` chunks) plus
``backward``.

* CUDA: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the region (peak
  statistics reset before, caches emptied), at the preset's size (1024 px) and batch sizes
  (8 / 8 / 4), under the trainer's defaults (bf16 autocast, channels-last); evaluation at the
  chunk ``inference_batch`` gives and, for comparison, at the old fixed batch of 16.
* CPU: the profiler's activation peak (``suite.cost.allocator_peak_bytes``: peak live tensor bytes
  of torch's CPU allocator above the start, float32) at a reduced shape (default 512 px, batch 2
  for every stage; evaluation at that batch; frozen passes and evaluation in chunks of as many
  images as the paper preset's chunk at 1024 px, ``--infer-images``). Conv activations scale with H x W, so
  the plain / checkpointed factor measured here is the one expected at 1024 px.

Both arms also return the loss and the gradients; the benchmark reports their relative difference
(the claim: <= 1e-5 in float32, checked on the CPU).

    PYTHONPATH=. python benchmarks/memory_peak.py                       # CPU: 512 px, batch 2
    PYTHONPATH=. python benchmarks/memory_peak.py --size 1024 --paper-batches   # on a GPU
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import torch

from suite.config import build_config
from suite.cost import allocator_peak_bytes
from suite.methods.rcae.networks import build_networks
from suite.methods.rcae.scorer import RcAEInference, RcAEScorer, crd_steps
from suite.methods.rcae.train import DetailStageLoss, DetectionStageLoss, ReconstructionStageLoss
from suite.models.ops import set_activation_checkpointing, to_channels_last
from suite.throughput import amp_dtype, inference_batch
from suite.training import freeze

MIB = float(1 << 20)
OUT = Path(__file__).resolve().parent / "results" / "memory_peak.json"
PAPER = {"size": 1024, "stage1": 8, "stage2": 8, "stage3": 4}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


class DeepestDepth(ReconstructionStageLoss):
    """Stage 1 at depth N every step: the largest graph a sampled depth can build."""

    def compute(self, model, inputs, g):
        from suite.methods.rcae.losses import reconstruction_loss

        inp, target = inputs
        return reconstruction_loss(target, model(inp, self.cfg.rcae.depth))


def _setup(size: int, device: torch.device, infer_images: int):
    # runtime.infer_mpx such that the frozen passes and the evaluation run ``infer_images`` images
    # per chunk, as the paper preset does at 1024 px with the default budget
    mpx = infer_images * size * size / 1e6 + 1e-9
    cfg = build_config("paper", overrides=[f"data.image_size={size}", "runtime.device=cpu",
                                           f"runtime.infer_mpx={mpx}"])
    torch.manual_seed(0)
    nets = build_networks(cfg)
    for net in nets.values():
        net.to(device)
    steps = list(range(1, cfg.rcae.depth + 1))
    infer = RcAEInference(nets, cfg, steps, crd_steps(cfg))
    return cfg, nets, infer


def _stage_step(stage: str, cfg, nets, infer, images: torch.Tensor, batch: int, device: torch.device,
                checkpointing: bool, amp: bool):
    """(closure running compute + backward, the trained module) of one stage's step."""
    g = torch.Generator().manual_seed(1)
    x = images[:batch].to(device)
    if stage == "stage1":
        module, loss = nets["ae"], DeepestDepth(cfg, images, device, recursive=True)
    elif stage == "stage2":
        module, loss = nets["dpn"], DetailStageLoss(cfg, freeze(nets["ae"]), images, device)
    else:
        module, loss = nets["crd"], DetectionStageLoss(cfg, infer, images, device, None)
    for net in nets.values():
        if net is not module:
            freeze(net)
    module.train().requires_grad_(True)
    set_activation_checkpointing(module, checkpointing)
    inputs = loss.build_inputs(x, g)
    state = g.get_state()

    def step(_unused: torch.Tensor) -> torch.Tensor:
        module.zero_grad(set_to_none=True)
        g.set_state(state)
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            value = loss.compute(module, inputs, g)
        value.backward()
        return value.detach()

    return step, module


def _grads(module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in module.parameters() if p.grad is not None]


def _measure(fn, device: torch.device) -> tuple[dict[str, float], object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn(None)
        torch.cuda.synchronize(device)
        return {"peak_allocated_mb": torch.cuda.max_memory_allocated(device) / MIB,
                "peak_reserved_mb": torch.cuda.max_memory_reserved(device) / MIB,
                "allocated_before_mb": before / MIB}, out
    box = {}

    def run(_):
        box["out"] = fn(None)

    peak = allocator_peak_bytes(run, torch.zeros(1))
    return {"activation_peak_mb": (peak or 0) / MIB}, box["out"]


def run(size: int, batches: dict[str, int], device: torch.device, eval_cap: int = 16,
        infer_images: int | None = None) -> dict:
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    images = torch.rand(max(batches.values()) * 2, 3, size, size)
    out: dict = {}
    if infer_images is None:
        infer_images = inference_batch(PAPER["size"], build_config("paper").runtime.infer_mpx)
    base_cfg, base_nets, _ = _setup(size, device, infer_images)
    for stage in ("stage1", "stage2", "stage3"):
        arms = {}
        results = {}
        for checkpointing in (False, True):
            cfg, nets, infer = base_cfg, copy.deepcopy(base_nets), None
            infer = RcAEInference(nets, cfg, list(range(1, cfg.rcae.depth + 1)), crd_steps(cfg))
            if cuda:
                for net in nets.values():
                    to_channels_last(net)
            step, module = _stage_step(stage, cfg, nets, infer, images, batches[stage], device, checkpointing,
                                       amp=cuda)
            t0 = time.perf_counter()
            mem, loss = _measure(step, device)
            mem["seconds"] = time.perf_counter() - t0
            arms["checkpointed" if checkpointing else "plain"] = mem
            results[checkpointing] = (loss, _grads(module))
            del step, module, nets, infer
        (l0, g0), (l1, g1) = results[False], results[True]
        key = "peak_reserved_mb" if cuda else "activation_peak_mb"
        entry = {"batch": batches[stage], **arms,
                 "factor": arms["plain"][key] / max(arms["checkpointed"][key], 1e-9),
                 "loss_rel_diff": _rel(l1, l0),
                 "grad_max_rel_diff": max(_rel(b, a) for a, b in zip(g0, g1)),
                 "n_grads": len(g0)}
        out[stage] = entry
        print(f"{stage}: batch {batches[stage]} plain {arms['plain'][key]:.0f} MiB, checkpointed "
              f"{arms['checkpointed'][key]:.0f} MiB (x{entry['factor']:.2f}); loss rel diff "
              f"{entry['loss_rel_diff']:.1e}, max grad rel diff {entry['grad_max_rel_diff']:.1e}", flush=True)
    chunk = min(eval_cap, inference_batch(size, base_cfg.runtime.infer_mpx))
    out["infer_images"] = infer_images
    evals = {"chunk": chunk}
    for label, batch in (("chunked", chunk), ("batch16", 16)) if cuda else (("chunked", chunk),):
        nets = base_nets
        for net in nets.values():
            freeze(net)
        scorer = RcAEScorer(RcAEInference(nets, base_cfg, list(range(1, base_cfg.rcae.depth + 1)),
                                          crd_steps(base_cfg)), base_cfg)
        x = torch.rand(batch, 3, size, size).to(device)

        def predict(_):
            with torch.inference_mode():
                return scorer.predict(x)["map"].float().cpu()

        t0 = time.perf_counter()
        mem, _ = _measure(predict, device)
        evals[label] = {"batch": batch, **mem, "seconds": time.perf_counter() - t0}
        print(f"eval ({label}, batch {batch}): {mem}", flush=True)
    out["eval"] = evals
    return out


def project(result: dict) -> dict:
    """CPU results only: the float32 activation peaks scaled to the paper preset (1024 px, batches
    8/8/4) by pixels x batch, which conv activations follow; a rough guide to the GPU, where bf16
    autocast roughly halves them and the allocator adds slack (reserved > allocated). An upper
    bound where a stage's peak is its frozen pass: that runs in chunks of ``infer_images`` images
    whatever the batch."""
    if not str(result.get("measure", "")).startswith("cpu"):
        return result
    area = (PAPER["size"] / result["image_size"]) ** 2
    out = {}
    for stage in ("stage1", "stage2", "stage3"):
        entry = result["phases"][stage]
        scale = area * PAPER[stage] / entry["batch"]
        out[stage] = {arm: entry[arm]["activation_peak_mb"] * scale for arm in ("plain", "checkpointed")}
    ev = result["phases"]["eval"]["chunked"]  # one chunk; the evaluation's peak at any test-set size
    out["eval_per_image_1024"] = ev["activation_peak_mb"] * area / ev["batch"]
    result["projected_paper_fp32_mb"] = out
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=None, help="image size (CPU default 512, CUDA 1024)")
    parser.add_argument("--batch", type=int, default=2, help="batch of every stage (CPU default 2)")
    parser.add_argument("--paper-batches", action="store_true", help="the paper preset's batches 8/8/4")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--infer-images", type=int, default=None,
                        help="images per frozen / evaluation chunk (default: the paper preset's at 1024 px)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    size = args.size or (1024 if device.type == "cuda" else 512)
    paper = args.paper_batches or (device.type == "cuda" and args.size is None)
    batches = {"stage1": 8, "stage2": 8, "stage3": 4} if paper else {s: args.batch for s in ("stage1", "stage2",
                                                                                                "stage3")}
    t0 = time.perf_counter()
    # The CPU evaluates one chunk no larger than the training batch (a full chunk at 512 px is 7
    # images: minutes on 2 cores); the peak per image is what scales.
    stages = run(size, batches, device, eval_cap=16 if device.type == "cuda" else args.batch,
                 infer_images=args.infer_images)
    result = {
        "benchmark": "memory_peak", "issue": "20.3",
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "measure": ("cuda max_memory_allocated / max_memory_reserved per phase, bf16 autocast, channels-last"
                    if device.type == "cuda" else
                    "cpu: torch.profiler activation peak (live tensor bytes above the start), float32"),
        "preset": "paper", "image_size": size, "batches": batches, "threads": args.threads,
        "torch": torch.__version__, "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
        "seconds": time.perf_counter() - t0, "phases": stages,
    }
    project(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
