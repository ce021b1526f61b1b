"""RcAE / DPN / CRD trained in three stages, and the plain ConvAE baseline (stage 1 only).

Stage 1 trains the reconstruction network on corrupted normals (target clean) with the recursion
depth drawn per batch (``train.depth_loss=all``: every depth each step); stage 2 freezes it and
trains the DPN on clean normals (``model.dpn_input=corrupted``: on corrupted inputs with clean
targets); stage 3 freezes both and trains the CRD on pseudo-anomalies with exact masks
(``suite.data.pseudo``).

Scoring (``RcAEScorer``) is the same for every rung of the ladder: the rung's map —
``|I - I_D^N|`` of the last depth without CRD (the paper's RcAE+DPN row is Table 6's N_R = 1 row),
the CRD map with it — optionally standardised per pixel by statistics of held-out normals, then
smoothed; image score = mean of the top-k pixels. Every other variant is scored too (inference
only) and lands in ``record.scorings``; the per-depth signal lands in ``record.diagnostics``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.config import Config
from suite.data.augment import training_pair
from suite.data.fae_corruption import procedural_textures
from suite.data.pseudo import crd_training_batch, load_pseudo_textures
from suite.losses import all_depths_loss, detail_loss, detection_loss, reconstruction_loss, sample_depth
from suite.methods.base import TrainContext, TrainedMethod, cached_stage, probe_hook, stage_options
from suite.models import CRD, DPN, ConvAE, RcAE
from suite.scoring import ResidualStandardizer, gaussian_blur, topk_mean
from suite.training import freeze, train_stage

MAP_KINDS = ("residual_final", "residual_mean", "crd", "fused")
STANDARDIZE = ("none", "pixel")
STATS_IMAGES = 128  # at most this many normals are used to fit statistics
TEXTURE_BANK_SIZE = 64
TEXTURE_SEED_OFFSET = 7_919


def crd_channels(cfg: Config) -> int:
    """CRD input channels per step: I_D^n ⊕ I (6), or z(|I_D^n - I|) ⊕ |I_D^n - I_D^(n-1)| ⊕ I (9)."""
    return 6 if cfg.model.crd_input == "paper" else 9


def build_networks(cfg: Config) -> dict[str, nn.Module]:
    m = cfg.model
    nets: dict[str, nn.Module] = {}
    if m.method == "convae":
        nets["ae"] = ConvAE(in_ch=3, width=m.width, depth=m.depth, skip=m.skip, code_channels=m.code_channels)
    else:
        nets["ae"] = RcAE(in_ch=3, width=m.width, depth=m.depth, skip=m.skip, shared_weights=m.shared_weights,
                          code_channels=m.code_channels)
        if m.use_dpn:
            nets["dpn"] = DPN(in_ch=3, width=m.dpn_width)
        if m.use_crd:
            nets["crd"] = CRD(in_ch=crd_channels(cfg), width=m.crd_width)
    return nets


def crd_steps(cfg: Config) -> list[int]:
    m = cfg.model
    return list(m.crd_steps) if m.crd_steps else list(range(1, m.depth + 1))


def _stats_batches(images: torch.Tensor, device: torch.device, batch: int = 16):
    for i in range(0, min(len(images), STATS_IMAGES), batch):
        yield images[i : i + batch].to(device)


class RcAEInference:
    """All-depth reconstruction, detail restoration and CRD input assembly, batched.

    ``steps`` are the depths reconstructed (1..N for RcAE, [N] for ConvAE); the CRD sees
    ``crd_steps`` of them.
    """

    def __init__(self, nets: dict[str, nn.Module], cfg: Config, steps: list[int], crd_steps_: list[int]):
        self.nets, self.cfg, self.steps = nets, cfg, steps
        self.crd_index = [steps.index(s) for s in crd_steps_]
        self.discrepancy_norm: ResidualStandardizer | None = None  # crd_input=discrepancy only

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

    @staticmethod
    def step_discrepancy(images: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        """|I_D^n - I| per step, mean over channels: (B, S, 1, H, W)."""
        return (details - images.unsqueeze(1)).abs().mean(dim=2, keepdim=True)

    def fit_discrepancy_norm(self, images: torch.Tensor, device: torch.device) -> None:
        """Per-pixel, per-step statistics of |I_D^n - I| on clean normals (crd_input=discrepancy)."""
        maps = []
        with torch.inference_mode():
            for batch in _stats_batches(images, device):
                details = self.details(batch, self.reconstructions(batch))[:, self.crd_index]
                maps.append(self.step_discrepancy(batch, details).flatten(1, 2).cpu())
        self.discrepancy_norm = ResidualStandardizer().fit(torch.cat(maps))

    def crd_input(self, images: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        """Stack (B, S, C_in, h, w) for the CRD at its (pooled) resolution; ``details`` holds every
        step in ``self.steps`` and the CRD's steps are picked here."""
        details = details[:, self.crd_index]
        expanded = images.unsqueeze(1).expand_as(details)
        if self.cfg.model.crd_input == "paper":
            stack = torch.cat([details, expanded], dim=2)
        else:
            if self.discrepancy_norm is None:
                raise RuntimeError("crd_input=discrepancy needs fit_discrepancy_norm() first")
            disc = self.step_discrepancy(images, details)
            z = self.discrepancy_norm(disc.flatten(1, 2)).unflatten(1, disc.shape[1:3]).expand_as(details)
            previous = torch.cat([expanded[:, :1], details[:, :-1]], dim=1)
            stack = torch.cat([z, (details - previous).abs(), expanded], dim=2)
        pool = self.cfg.model.crd_pool
        if pool > 1:
            b, s = stack.shape[:2]
            flat = F.avg_pool2d(stack.flatten(0, 1), pool)
            stack = flat.unflatten(0, (b, s))
        return stack

    def crd_logits(self, images: torch.Tensor, details: torch.Tensor) -> torch.Tensor:
        out = self.nets["crd"].logits(self.crd_input(images, details))
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out


class RcAEScorer:
    """Raw maps -> anomaly maps of every scoring variant ``"<map kind>|<standardize>"``.

    Raw maps (B, 1, H, W): ``residual_final`` = mean_c |I - I_D^N|, ``residual_mean`` =
    mean_n mean_c |I - I_D^n|, ``crd`` = the CRD's logits (or sigmoid, ``eval.crd_output``).
    ``pixel`` standardisation: z = (m - mu) / (sigma + floor) per pixel, mu and sigma over the
    held-out normals' maps (``ResidualStandardizer``). ``fused`` = (z(residual_final) + z(crd)) / 2
    with per-pixel z under ``pixel`` and one global mean/std per map under ``none``. Every map is
    then smoothed by a Gaussian of ``eval.smooth_sigma``.
    """

    def __init__(self, infer: RcAEInference, cfg: Config):
        self.infer, self.cfg = infer, cfg
        self.has_crd = "crd" in infer.nets
        self.kinds = [k for k in MAP_KINDS if self.has_crd or k not in ("crd", "fused")]
        if len(infer.steps) == 1:
            self.kinds = [k for k in self.kinds if k != "residual_mean"]
        self.pixel: dict[str, ResidualStandardizer] = {}
        self.global_: dict[str, tuple[float, float]] = {}

    def resolve(self, kind: str) -> str:
        if kind == "auto":
            return "crd" if self.has_crd else "residual_final"
        if kind not in self.kinds:
            raise ValueError(f"eval.anomaly_map={kind!r} is not available here (available: {', '.join(self.kinds)})")
        return kind

    def raw_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw maps plus ``recons`` / ``details`` stacks (B, S, 3, H, W) for the gallery."""
        infer = self.infer
        recons = infer.reconstructions(images)
        details = infer.details(images, recons)
        disc = infer.step_discrepancy(images, details)[:, :, 0]  # (B, S, H, W)
        out = {"recons": recons, "details": details,
               "residual_final": disc[:, -1:], "residual_mean": disc.mean(dim=1, keepdim=True)}
        if self.has_crd:
            logits = infer.crd_logits(images, details)
            out["crd"] = logits if self.cfg.eval.crd_output == "logits" else torch.sigmoid(logits)
        return out

    def fit(self, normals: torch.Tensor, device: torch.device) -> "RcAEScorer":
        """Statistics of the raw maps of clean held-out normals (per pixel and global)."""
        kinds = [k for k in self.kinds if k != "fused"]
        maps: dict[str, list[torch.Tensor]] = {k: [] for k in kinds}
        with torch.inference_mode():
            for batch in _stats_batches(normals, device):
                raw = self.raw_maps(batch)
                for k in kinds:
                    maps[k].append(raw[k].float().cpu())
        for k in kinds:
            stacked = torch.cat(maps[k])
            self.pixel[k] = ResidualStandardizer().fit(stacked)
            self.global_[k] = (stacked.mean().item(), stacked.std().item() + 1e-6)
        return self

    def _standardised(self, raw: dict[str, torch.Tensor], kind: str, standardize: str) -> torch.Tensor:
        if standardize == "pixel":
            return self.pixel[kind](raw[kind])
        return raw[kind]

    def variant_map(self, raw: dict[str, torch.Tensor], kind: str, standardize: str) -> torch.Tensor:
        kind = self.resolve(kind)
        if kind == "fused":
            parts = []
            for part in ("residual_final", "crd"):
                if standardize == "pixel":
                    parts.append(self.pixel[part](raw[part]))
                else:
                    mean, std = self.global_[part]
                    parts.append((raw[part] - mean) / std)
            amap = 0.5 * (parts[0] + parts[1])
        else:
            amap = self._standardised(raw, kind, standardize)
        return gaussian_blur(amap, self.cfg.eval.smooth_sigma)

    def variants(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every variant's map, plus ``auto|...`` aliases of the rung's own map."""
        out: dict[str, torch.Tensor] = {}
        for standardize in STANDARDIZE:
            for kind in self.kinds:
                out[f"{kind}|{standardize}"] = self.variant_map(raw, kind, standardize)
            out[f"auto|{standardize}"] = out[f"{self.resolve('auto')}|{standardize}"]
        return out

    def diagnostics(self, images: torch.Tensor, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-depth signal maps (smoothed, not standardised): ``recon@n`` = mean_c |I - I_R^n|,
        ``detail@n`` = mean_c |I - I_D^n| (with DPN), ``crd@all``."""
        sigma = self.cfg.eval.smooth_sigma
        out: dict[str, torch.Tensor] = {}
        families = [("recon", raw["recons"])]
        if "dpn" in self.infer.nets:
            families.append(("detail", raw["details"]))
        for name, stack in families:
            disc = self.infer.step_discrepancy(images, stack)
            for i, step in enumerate(self.infer.steps):
                out[f"{name}@{step}"] = gaussian_blur(disc[:, i], sigma)
        if self.has_crd:
            out["crd@all"] = gaussian_blur(raw["crd"], sigma)
        return out


def _texture_bank(cfg: Config) -> torch.Tensor | None:
    if "occluders" not in cfg.pseudo.families:
        return None
    size = cfg.data.image_size
    bank = load_pseudo_textures(cfg.pseudo, size)
    if bank is None:
        gen = torch.Generator().manual_seed(cfg.runtime.seed + TEXTURE_SEED_OFFSET)
        bank = procedural_textures(TEXTURE_BANK_SIZE, size, gen)
    return bank


def _donors(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return images[torch.randint(0, images.shape[0], (min(8, images.shape[0]),), generator=g)]


def train(ctx: TrainContext) -> TrainedMethod:
    cfg, device = ctx.cfg, ctx.device
    nets = build_networks(cfg)
    for net in nets.values():
        net.to(device)
    images = ctx.train_images
    is_rcae = cfg.model.method == "rcae"
    all_steps = list(range(1, cfg.model.depth + 1)) if is_rcae else [cfg.model.depth]
    infer = RcAEInference(nets, cfg, all_steps, crd_steps(cfg) if is_rcae else all_steps)
    stage_times: dict[str, float] = {}
    info: dict[str, object] = {}
    ae = nets["ae"]
    train_cfg = cfg.train

    # ---- stage 1: reconstruction network on corrupted inputs
    def stage1_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        inp, target, _ = training_pair(batch.cpu(), cfg.augment, g, donors=_donors(images, g))
        inp, target = inp.to(device), target.to(device)
        if not is_rcae:
            return reconstruction_loss(target, model(inp))
        if train_cfg.depth_loss == "all":
            return all_depths_loss(target, model(inp, "all"))
        return reconstruction_loss(target, model(inp, sample_depth(cfg.model.depth, g, train_cfg.depth_sampling)))

    def probe_predict(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        amap = (ae(imgs) - imgs).abs().mean(dim=1, keepdim=True)
        return {"map": gaussian_blur(amap, cfg.eval.smooth_sigma)}

    probe = TrainedMethod(predict=probe_predict, score=lambda m: topk_mean(m, cfg.eval.top_k), modules={"ae": ae})

    def run1(path: str) -> None:
        train_stage("stage1", ae, stage1_loss, images, train_cfg.stage1, checkpoint_path=path,
                    on_epoch_end=probe_hook(ctx, ae, probe), **stage_options(ctx, "stage1"))

    stage_times["stage1"], info["stage1_from_cache"] = cached_stage(ctx, "stage1", ae, run1)
    freeze(ae)

    # ---- stage 2: DPN with the reconstruction network frozen
    dpn = nets.get("dpn")
    if dpn is not None:

        def stage2_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            inp = batch
            if cfg.model.dpn_input == "corrupted":
                inp, _, _ = training_pair(batch.cpu(), cfg.augment, g, donors=_donors(images, g))
                inp = inp.to(device)
            n = sample_depth(cfg.model.depth, g, train_cfg.depth_sampling)
            with torch.no_grad():
                recon = ae(inp, n)
            return detail_loss(batch, recon, model(recon, inp))

        def run2(path: str) -> None:
            train_stage("stage2", dpn, stage2_loss, images, train_cfg.stage2, checkpoint_path=path,
                        **stage_options(ctx, "stage2"))

        stage_times["stage2"], info["stage2_from_cache"] = cached_stage(ctx, "stage2", dpn, run2)
        freeze(dpn)

    # ---- stage 3: CRD on pseudo-anomalies, everything before frozen
    crd = nets.get("crd")
    if crd is not None:
        if cfg.model.crd_input == "discrepancy":
            infer.fit_discrepancy_norm(images, device)
        textures = _texture_bank(cfg)

        def stage3_loss(model: nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            corrupted, masks = crd_training_batch(batch.cpu(), cfg.augment, cfg.pseudo, g,
                                                  donors=_donors(images, g), textures=textures)
            corrupted, masks = corrupted.to(device), masks.to(device)
            with torch.no_grad():
                stack = infer.crd_input(corrupted, infer.details(corrupted, infer.reconstructions(corrupted)))
            pred = model(stack)
            if pred.shape[-2:] != masks.shape[-2:]:
                masks = F.adaptive_avg_pool2d(masks, pred.shape[-2:])
            return detection_loss(pred, masks)

        def run3(path: str) -> None:
            train_stage("stage3", crd, stage3_loss, images, train_cfg.stage3, checkpoint_path=path,
                        **stage_options(ctx, "stage3"))

        stage_times["stage3"], info["stage3_from_cache"] = cached_stage(ctx, "stage3", crd, run3)
        freeze(crd)

    # ---- scoring, fitted on held-out normals
    scorer = RcAEScorer(infer, cfg)
    normals, fitted_on = ctx.calib_images, "calib"
    if cfg.eval.fit_on == "train" or normals is None or len(normals) < 2:
        normals, fitted_on = images, "train"
        if cfg.eval.fit_on == "calib":
            ctx.log("[scoring] fewer than 2 calibration normals: scoring statistics fitted on the train normals")
    scorer.fit(normals, device)
    kind, standardize = scorer.resolve(cfg.eval.anomaly_map), cfg.eval.standardize
    info.update({"scoring": f"{kind}|{standardize}", "scoring_fit_on": fitted_on, "scoring_fit_n": len(normals)})

    def predict(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = scorer.raw_maps(imgs)
        out = {"map": scorer.variant_map(raw, kind, standardize), "recons": raw["recons"]}
        if dpn is not None:
            out["details"] = raw["details"]
        return out

    def extra_maps(imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = scorer.raw_maps(imgs)
        out: dict[str, torch.Tensor] = {}
        if cfg.eval.scoring_variants:
            out.update({f"variant:{k}": v for k, v in scorer.variants(raw).items()})
        if cfg.eval.diagnostics and is_rcae:
            out.update({f"diag:{k}": v for k, v in scorer.diagnostics(imgs, raw).items()})
        return out

    return TrainedMethod(
        predict=predict,
        extra_maps=extra_maps,
        score=lambda maps: topk_mean(maps, cfg.eval.top_k),
        modules=nets,
        stage_times=stage_times,
        info=info,
        steps=all_steps,
    )
