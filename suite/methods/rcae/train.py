"""RcAE / DPN / CRD trained in three stages; ConvAE reuses stage 1 (``train_reconstruction``).

Stage 1 trains the reconstruction network on corrupted normals (target clean) with the recursion
depth drawn per batch (``train.depth_loss=all``: every depth each step); stage 2 freezes it and
trains the DPN on clean normals (``rcae.dpn_input=corrupted``: on corrupted inputs with clean
targets); stage 3 freezes both and trains the CRD on pseudo-anomalies with exact masks
(``pseudo.py``). Each stage's loss is a small callable class below; ``train`` runs them
through the stage cache and hands the frozen networks to an ``RcAEScorer`` fitted on held-out
normals.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.config import Config
from suite.data.augment import Buffers, training_pair
from suite.data.occluders import texture_bank
from suite.methods.base import TrainContext, TrainedMethod, cached_stage, probe_hook, stage_options
from suite.methods.rcae.losses import all_depths_loss, detail_loss, detection_loss, reconstruction_loss, sample_depth
from suite.methods.rcae.networks import build_networks
from suite.methods.rcae.photometric_switches import StageInput, is_grayscale, offset_normaliser, stage3_config
from suite.methods.rcae.pseudo import crd_training_batch
from suite.methods.rcae.scorer import RcAEInference, RcAEScorer, crd_steps
from suite.scoring import gaussian_blur, topk_mean
from suite.throughput import in_chunks, inference_batch
from suite.training import freeze, train_stage

TEXTURE_SEED_OFFSET = 7_919
DONORS = 8  # normals a batch may paste patches from


def _donors(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return images[torch.randint(0, images.shape[0], (min(DONORS, images.shape[0]),), generator=g)]


def augment_device(device: torch.device, g: torch.Generator, make_generator=torch.Generator
                   ) -> tuple[torch.device, torch.Generator]:
    """Where a batch's inputs are built and from which generator.

    On CUDA: on ``device``, from a generator there seeded with one draw of ``g``, so the inputs never
    wait on a CPU loop and the stream stays a function of the seed (reproducible on one device). Anywhere
    else: on the CPU from ``g`` itself, with no draw taken, so the CPU stream is exactly what it was.
    ``make_generator(device=...)`` makes the device generator (a test passes a fake).
    """
    if device.type != "cuda":
        return torch.device("cpu"), g
    seed = int(torch.randint(0, 2**63 - 1, (), generator=g))
    return device, make_generator(device=device).manual_seed(seed)


def _frozen_chunk(cfg: Config) -> int:
    return inference_batch(cfg.data.image_size, cfg.runtime.infer_mpx)


class ReconstructionStageLoss:
    """Stage 1: ``L_rec(I, f^n(corrupt(I)))`` (L1 + gradient L1, ``losses.py``) at a sampled depth
    n (``train.depth_sampling``), or summed over every depth (``train.depth_loss=all``); ConvAE
    always runs its full depth. ``build_inputs`` (the corruption) and ``compute`` (the pass and the
    loss) are the two timed phases of ``suite.training``; calling the object runs both."""

    def __init__(self, cfg: Config, images: torch.Tensor, device: torch.device, recursive: bool,
                 prep: StageInput | None = None):
        self.cfg, self.images, self.device, self.recursive = cfg, images, device, recursive
        self.prep = prep or StageInput(cfg, None, False)
        # The inputs of one step are done with when the next step builds its own (suite.training).
        self.buffers = Buffers()

    def build_inputs(self, batch: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        prep = self.prep
        donors = prep.normalise(_donors(self.images, g))
        where, ag = augment_device(self.device, g)
        inp, target, _ = training_pair(prep(batch.to(where), g), self.cfg.augment, ag, donors=donors,
                                       buffers=self.buffers)
        return inp.to(self.device, non_blocking=True), target.to(self.device, non_blocking=True)

    def compute(self, model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        cfg, (inp, target) = self.cfg, inputs
        if not self.recursive:
            return reconstruction_loss(target, model(inp))
        if cfg.train.depth_loss == "all":
            return all_depths_loss(target, model(inp, "all"))
        return reconstruction_loss(target, model(inp, sample_depth(cfg.rcae.depth, g, cfg.train.depth_sampling)))

    def __call__(self, model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.compute(model, self.build_inputs(batch, g), g)


class DetailStageLoss:
    """Stage 2: the DPN restores detail, ``L = L_rec(I, I_R^n + DPN(I_R^n ⊕ ∇x))`` with the
    reconstruction network frozen (no graph kept, run in ``runtime.infer_mpx`` chunks); x is I
    (``rcae.dpn_input=clean``) or corrupt(I)."""

    def __init__(self, cfg: Config, ae: nn.Module, images: torch.Tensor, device: torch.device,
                 prep: StageInput | None = None):
        self.cfg, self.ae, self.images, self.device = cfg, ae, images, device
        self.prep = prep or StageInput(cfg, None, False)
        self.buffers = Buffers()

    def build_inputs(self, batch: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.prep(batch, g)
        inp = batch
        if self.cfg.rcae.dpn_input == "corrupted":
            donors = self.prep.normalise(_donors(self.images, g))
            where, ag = augment_device(self.device, g)
            inp, _, _ = training_pair(batch.to(where), self.cfg.augment, ag, donors=donors, buffers=self.buffers)
            inp = inp.to(self.device, non_blocking=True)
        return batch, inp

    def compute(self, model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        cfg, (batch, inp) = self.cfg, inputs
        n = sample_depth(cfg.rcae.depth, g, cfg.train.depth_sampling)
        with torch.no_grad():
            recon = in_chunks(lambda x: self.ae(x, n), inp, size=_frozen_chunk(cfg))
        return detail_loss(batch, recon, model(recon, inp))

    def __call__(self, model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.compute(model, self.build_inputs(batch, g), g)


class DetectionStageLoss:
    """Stage 3: the CRD segments pseudo-anomalies from the frozen recursion's steps,
    ``L = detection_loss(CRD(stack(I_D^n ⊕ I)), mask)`` (masks pooled to the CRD's resolution);
    the frozen networks keep no graph and run in ``runtime.infer_mpx`` chunks."""

    def __init__(self, cfg: Config, infer: RcAEInference, images: torch.Tensor, device: torch.device,
                 textures: torch.Tensor | None, prep: StageInput | None = None):
        self.cfg, self.infer, self.images, self.device, self.textures = cfg, infer, images, device, textures
        self.prep = prep or StageInput(cfg, None, False)
        self.grey = cfg.pseudo.colour == "match" and is_grayscale(images)
        self.buffers = Buffers()

    def build_inputs(self, batch: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, prep = self.cfg, self.prep
        donors = prep.normalise(_donors(self.images, g))
        where, ag = augment_device(self.device, g)
        if self.textures is not None and self.textures.device != where:
            self.textures = self.textures.to(where)  # once: the occluders crop from the bank every batch
        corrupted, masks = crd_training_batch(prep(batch.to(where), g), cfg.augment, cfg.pseudo, ag,
                                              donors=donors, textures=self.textures, grey=self.grey,
                                              buffers=self.buffers)
        return corrupted.to(self.device, non_blocking=True), masks.to(self.device, non_blocking=True)

    def compute(self, model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        infer, (corrupted, masks) = self.infer, inputs

        def stack(x: torch.Tensor) -> torch.Tensor:
            recons = infer.reconstructions(x)
            return infer.crd_input(x, infer.details(x, recons), recons)

        with torch.no_grad():
            crd_in = in_chunks(stack, corrupted, size=_frozen_chunk(self.cfg))
        pred = model(crd_in)
        if pred.shape[-2:] != masks.shape[-2:]:
            masks = F.adaptive_avg_pool2d(masks, pred.shape[-2:])
        return detection_loss(pred, masks)

    def __call__(self, model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.compute(model, self.build_inputs(batch, g), g)


def _texture_bank(cfg: Config) -> torch.Tensor | None:
    if "occluders" not in cfg.pseudo.families:
        return None
    bank, _ = texture_bank(cfg.pseudo.texture_root, cfg.data.image_size, cfg.runtime.seed + TEXTURE_SEED_OFFSET,
                           "pseudo.texture_root")
    return bank


def _reconstruction_probe(ae: nn.Module, cfg: Config, prep: StageInput) -> TrainedMethod:
    """Scores ``|I - f(I)|`` with what stage 1 has trained so far (periodic validation)."""

    def predict(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        imgs = prep.normalise(imgs)
        amap = (ae(imgs) - imgs).abs().mean(dim=1, keepdim=True)
        return {"map": gaussian_blur(amap, cfg.eval.smooth_sigma)}

    return TrainedMethod(predict=predict, score=lambda m: topk_mean(m, cfg.eval.top_k), modules={"ae": ae})


def _run_stage(ctx: TrainContext, stage: str, module: nn.Module, loss, times: dict, info: dict,
               on_epoch_end=None, stage_cfg=None) -> None:
    cfg = ctx.cfg
    stage_cfg = stage_cfg or getattr(cfg.train, stage)

    def run(path: str) -> None:
        train_stage(stage, module, loss, ctx.train_images, stage_cfg, checkpoint_path=path,
                    on_epoch_end=on_epoch_end, **stage_options(ctx, stage))

    times[stage], info[f"{stage}_from_cache"] = cached_stage(ctx, stage, module, run)
    freeze(module)


def _loss_hook(ctx: TrainContext, stage: str):
    """``on_epoch_end`` of a stage without a validation probe: its per-epoch loss reaches the
    record's history (and a sweep's trackers) like stage 1's."""
    if ctx.on_epoch_end is None:
        return None
    return lambda epoch, loss: ctx.on_epoch_end(stage, epoch, loss, None)


def _scoring_normals(ctx: TrainContext) -> tuple[torch.Tensor, str]:
    normals = ctx.calib_images
    if ctx.cfg.eval.fit_on == "train" or normals is None or len(normals) < 2:
        if ctx.cfg.eval.fit_on == "calib":
            ctx.log("[scoring] fewer than 2 calibration normals: scoring statistics fitted on the train normals")
        return ctx.train_images, "train"
    return normals, "calib"


def train(ctx: TrainContext) -> TrainedMethod:
    """RcAE: the recursive AE reconstructs at every depth 1..N, the CRD sees ``rcae.crd_steps``."""
    steps = list(range(1, ctx.cfg.rcae.depth + 1))
    return train_reconstruction(ctx, build_networks(ctx.cfg), steps, crd_steps(ctx.cfg), recursive=True)


def train_reconstruction(ctx: TrainContext, nets: dict[str, nn.Module], steps: list[int], crd_steps_: list[int],
                         recursive: bool) -> TrainedMethod:
    """Train ``nets`` (``ae``, optionally ``dpn`` and ``crd``) stage by stage and fit the scorer.

    ``steps`` are the depths the scorer reconstructs; ``recursive=False`` runs ``ae`` once at its
    full depth (ConvAE's trainer calls this with its own network).
    """
    cfg, device, images = ctx.cfg, ctx.device, ctx.train_images
    for net in nets.values():
        net.to(device)
    infer = RcAEInference(nets, cfg, steps, crd_steps_)
    times: dict[str, float] = {}
    info: dict[str, object] = {}
    ae = nets["ae"]
    # issue-19 switches (RcAE only; off by default): offset normalisation, jitter (photometric_switches.py)
    norm = offset_normaliser(cfg, images, ctx.checkpoint_dir, recursive, ctx.log)
    prep = StageInput(cfg, norm, recursive)
    infer.normaliser = norm
    if norm is not None:
        info["photometric_reference"] = float(norm.reference)

    hook = probe_hook(ctx, ae, _reconstruction_probe(ae, cfg, prep))
    _run_stage(ctx, "stage1", ae, ReconstructionStageLoss(cfg, images, device, recursive, prep), times, info, hook)
    if "dpn" in nets:
        _run_stage(ctx, "stage2", nets["dpn"], DetailStageLoss(cfg, ae, images, device, prep), times, info,
                   _loss_hook(ctx, "stage2"))
    if "crd" in nets:
        if cfg.rcae.crd_input == "discrepancy":
            infer.fit_discrepancy_norm(images, device)
        loss = DetectionStageLoss(cfg, infer, images, device, _texture_bank(cfg), prep)
        stage3 = stage3_config(cfg, len(images)) if recursive else None
        _run_stage(ctx, "stage3", nets["crd"], loss, times, info, _loss_hook(ctx, "stage3"), stage3)

    scorer = RcAEScorer(infer, cfg)
    normals, fitted_on = _scoring_normals(ctx)
    scorer.fit(normals, device)
    kind = scorer.resolve(cfg.eval.anomaly_map)
    info.update({"scoring": f"{kind}|{cfg.eval.standardize}", "scoring_fit_on": fitted_on,
                 "scoring_fit_n": len(normals)})
    if kind == "fused":
        info["fused"] = list(scorer.fuse)
    modules = nets if norm is None else {**nets, "offset_norm": norm}  # the reference travels with the model
    return TrainedMethod(predict=scorer.predict, extra_maps=scorer.extra_maps, score=scorer.score, modules=modules,
                         stage_times=times, info=info, steps=steps)
