"""RcAE / DPN / CRD trained in three stages, and the plain ConvAE baseline (stage 1 only).

Stage 1 trains the reconstruction network on corrupted normals (target clean) with the recursion
depth drawn per batch; stage 2 freezes it and trains the DPN on clean normals; stage 3 freezes both
and trains the CRD on pseudo-anomalies with exact masks. Without CRD (ablations) the pixel map is
the mean absolute residual over the recursion steps of the last stage available, standardised per
pixel by clean-train statistics and smoothed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.data.augment import pseudo_anomalies, training_pair
from suite.losses import detail_loss, detection_loss, reconstruction_loss, sample_depth
from suite.methods.base import TrainContext, TrainedMethod, cached_stage, probe_hook, stage_options
from suite.models import CRD, DPN, ConvAE, RcAE
from suite.scoring import ResidualStandardizer, gaussian_blur, topk_mean
from suite.training import freeze, train_stage


def build_networks(ctx: TrainContext) -> dict[str, nn.Module]:
    m = ctx.cfg.model
    nets: dict[str, nn.Module] = {}
    if m.method == "convae":
        nets["ae"] = ConvAE(in_ch=3, width=m.width, depth=m.depth, skip=m.skip)
    else:
        nets["ae"] = RcAE(in_ch=3, width=m.width, depth=m.depth, skip=m.skip, shared_weights=m.shared_weights)
        if m.use_dpn:
            nets["dpn"] = DPN(in_ch=3, width=m.dpn_width)
        if m.use_crd:
            nets["crd"] = CRD(in_ch=6, width=m.crd_width)
    return nets


def crd_steps(ctx_cfg) -> list[int]:
    m = ctx_cfg.model
    return list(m.crd_steps) if m.crd_steps else list(range(1, m.depth + 1))


class RcAEInference:
    """All-depth reconstruction, detail restoration and CRD input assembly, batched."""

    def __init__(self, nets: dict[str, nn.Module], cfg, steps: list[int]):
        self.nets, self.cfg, self.steps = nets, cfg, steps

    def reconstructions(self, images: torch.Tensor) -> torch.Tensor:
        ae = self.nets["ae"]
        if isinstance(ae, RcAE):
            return ae.reconstruct_all(images, self.steps)
        return ae(images).unsqueeze(1)

    def details(self, images: torch.Tensor, recons: torch.Tensor) -> torch.Tensor:
        """I_D^n = I_R^n + DPN(I_R^n ⊕ ∇I) for every step, as one batched DPN call."""
        dpn = self.nets.get("dpn")
        if dpn is None:
            return recons
        return recons + dpn(recons, images)

    def crd_input(self, images: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        """Stack (B, S, 6, h, w) of I_D^n ⊕ I at the CRD's (pooled) resolution."""
        b, s = details.shape[:2]
        stack = torch.cat([details, images.unsqueeze(1).expand_as(details)], dim=2)
        pool = self.cfg.model.crd_pool
        if pool > 1:
            flat = F.avg_pool2d(stack.reshape(b * s, *stack.shape[2:]), pool)
            stack = flat.reshape(b, s, *flat.shape[1:])
        return stack

    def crd_map(self, images: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        out = self.nets["crd"](self.crd_input(images, details))
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out


def train(ctx: TrainContext) -> TrainedMethod:
    cfg, device = ctx.cfg, ctx.device
    nets = build_networks(ctx)
    for net in nets.values():
        net.to(device)
    images = ctx.train_images
    steps = crd_steps(cfg) if cfg.model.method == "rcae" else [cfg.model.depth]
    all_steps = list(range(1, cfg.model.depth + 1)) if cfg.model.method == "rcae" else [cfg.model.depth]
    infer = RcAEInference(nets, cfg, all_steps)
    stage_times: dict[str, float] = {}
    info: dict[str, object] = {}
    common = stage_options(ctx)
    donors = images

    # ---- stage 1: reconstruction network on corrupted inputs, depth drawn per batch
    ae = nets["ae"]
    is_rcae = isinstance(ae, RcAE)

    def stage1_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        donor_idx = torch.randint(0, donors.shape[0], (min(8, donors.shape[0]),), generator=g)
        inp, target, _ = training_pair(batch.cpu(), cfg.augment, g, donors=donors[donor_idx])
        inp, target = inp.to(device), target.to(device)
        recon = model(inp, sample_depth(cfg.model.depth, g)) if is_rcae else model(inp)
        return reconstruction_loss(target, recon)

    def probe_predict(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = ae(imgs)
        amap = (recon - imgs).abs().mean(dim=1, keepdim=True)
        return {"map": gaussian_blur(amap, cfg.eval.smooth_sigma)}

    probe = TrainedMethod(predict=probe_predict, score=lambda m: topk_mean(m, cfg.eval.top_k), modules={"ae": ae})

    def run1(path: str) -> None:
        train_stage("stage1", ae, stage1_loss, images, cfg.train.stage1, checkpoint_path=path,
                    on_epoch_end=probe_hook(ctx, ae, probe), **common)

    stage_times["stage1"], info["stage1_from_cache"] = cached_stage(ctx, "stage1", ae, run1)
    freeze(ae)

    # ---- stage 2: DPN on clean normals, reconstruction network frozen
    dpn = nets.get("dpn")
    if dpn is not None:

        def stage2_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            n = sample_depth(cfg.model.depth, g)
            with torch.no_grad():
                recon = ae(batch, n)
            return detail_loss(batch, recon, model(recon, batch))

        def run2(path: str) -> None:
            train_stage("stage2", dpn, stage2_loss, images, cfg.train.stage2, checkpoint_path=path, **common)

        stage_times["stage2"], info["stage2_from_cache"] = cached_stage(ctx, "stage2", dpn, run2)
        freeze(dpn)

    # ---- stage 3: CRD on pseudo-anomalies, everything before frozen
    crd = nets.get("crd")
    crd_infer = RcAEInference(nets, cfg, steps)
    if crd is not None:

        def stage3_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            donor_idx = torch.randint(0, donors.shape[0], (min(8, donors.shape[0]),), generator=g)
            corrupted, masks = pseudo_anomalies(batch.cpu(), cfg.augment, g, donors=donors[donor_idx])
            corrupted, masks = corrupted.to(device), masks.to(device)
            with torch.no_grad():
                details = crd_infer.details(corrupted, crd_infer.reconstructions(corrupted))
                stack = crd_infer.crd_input(corrupted, details)
            pred = model(stack)
            if pred.shape[-2:] != masks.shape[-2:]:
                masks = F.adaptive_avg_pool2d(masks, pred.shape[-2:])
            return detection_loss(pred, masks)

        def run3(path: str) -> None:
            train_stage("stage3", crd, stage3_loss, images, cfg.train.stage3, checkpoint_path=path, **common)

        stage_times["stage3"], info["stage3_from_cache"] = cached_stage(ctx, "stage3", crd, run3)
        freeze(crd)

    # ---- scoring
    standardizer: ResidualStandardizer | None = None

    def residual_map(imgs: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        return (details - imgs.unsqueeze(1)).abs().mean(dim=(1, 2)).unsqueeze(1)

    map_kind = cfg.eval.anomaly_map if crd is not None else "residual"
    crd_idx = [all_steps.index(s) for s in steps]

    def raw_maps(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        recons = infer.reconstructions(imgs)
        details = infer.details(imgs, recons)
        out = {"recons": recons}
        if map_kind != "crd":
            out["residual"] = residual_map(imgs, details)
        if dpn is not None:
            out["details"] = details
        if crd is not None and map_kind != "residual":
            out["crd"] = crd_infer.crd_map(imgs, details[:, crd_idx])
        return out

    # Statistics of clean training normals: per-pixel for the residual (standardisation), one
    # mean/std for the CRD map, so the two can be fused on a common scale.
    crd_scale = (0.0, 1.0)
    if (map_kind != "crd" and cfg.eval.standardize) or map_kind == "fused":
        residuals, crd_maps = [], []
        with torch.inference_mode():
            for i in range(0, min(len(images), 128), 16):
                out = raw_maps(images[i : i + 16].to(device))
                residuals.append(out["residual"].cpu())
                if "crd" in out:
                    crd_maps.append(out["crd"].cpu())
        if cfg.eval.standardize:
            standardizer = ResidualStandardizer().fit(torch.cat(residuals))
        if crd_maps:
            stacked = torch.cat(crd_maps)
            crd_scale = (stacked.mean().item(), stacked.std().item() + 1e-6)

    def predict(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = raw_maps(imgs)
        if map_kind == "crd":
            amap = out.pop("crd")
        else:
            residual = out.pop("residual")
            if standardizer is not None:
                residual = standardizer(residual)
            amap = residual
            if map_kind == "fused":  # the mean of the two maps, each on the scale of clean normals
                amap = 0.5 * (residual + (out.pop("crd") - crd_scale[0]) / crd_scale[1])
        out["map"] = gaussian_blur(amap, cfg.eval.smooth_sigma)
        return out

    return TrainedMethod(
        predict=predict,
        score=lambda maps: topk_mean(maps, cfg.eval.top_k),
        modules=nets,
        stage_times=stage_times,
        info=info,
        steps=all_steps,
    )
