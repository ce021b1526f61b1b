"""RcAE scoring: batched all-depth inference (``RcAEInference``) and the anomaly maps of every
scoring variant (``RcAEScorer``: ``fit`` on held-out normals, ``predict``), apart from the networks.

Scoring is the same for every rung of the ladder: the rung's map — ``|I - I_D^N|`` of the last
depth without CRD (the paper's RcAE+DPN row is Table 6's N_R = 1 row), the CRD map with it —
optionally standardised per pixel by statistics of held-out normals, then smoothed; image score =
mean of the top-k pixels. Every other variant is scored too (inference only) and lands in
``record.scorings``; the per-depth signal lands in ``record.diagnostics``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from suite.config import Config
from suite.methods.rcae.model import RcAE
from suite.methods.rcae.photometric_switches import offset_free_maps
from suite.scoring import ResidualStandardizer, gaussian_blur, topk_mean
from suite.throughput import inference_batch

# residual_centred / residual_gain / structure (issue 19): blind to a global offset (photometric_switches.py)
OFFSET_FREE_KINDS = ("residual_centred", "residual_gain", "structure")
MAP_KINDS = ("residual_final", "residual_mean", "crd", "fused", "residual_centred", "residual_gain", "structure")
STANDARDIZE = ("none", "pixel")
STATS_IMAGES = 128  # at most this many normals are used to fit statistics


def crd_steps(cfg: Config) -> list[int]:
    m = cfg.rcae
    return list(m.crd_steps) if m.crd_steps else list(range(1, m.depth + 1))


def _stats_batches(images: torch.Tensor, cfg: Config, device: torch.device):
    """The first ``STATS_IMAGES`` normals on ``device``, in ``runtime.infer_mpx`` chunks."""
    batch = inference_batch(cfg.data.image_size, cfg.runtime.infer_mpx)
    for i in range(0, min(len(images), STATS_IMAGES), batch):
        yield images[i : i + batch].to(device, non_blocking=True)


class RcAEInference:
    """All-depth reconstruction, detail restoration and CRD input assembly, batched.

    ``steps`` are the depths reconstructed (1..N for RcAE, [N] for ConvAE); the CRD sees
    ``crd_steps`` of them.
    """

    def __init__(self, nets: dict[str, nn.Module], cfg: Config, steps: list[int], crd_steps_: list[int]):
        self.nets, self.cfg, self.steps = nets, cfg, steps
        self.crd_index = [steps.index(s) for s in crd_steps_]
        self.discrepancy_norm: ResidualStandardizer | None = None  # crd_input=discrepancy only
        self.normaliser: nn.Module | None = None  # rcae.normalise: applied to the scorer's input images

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
            for batch in _stats_batches(images, self.cfg, device):
                batch = batch if self.normaliser is None else self.normaliser(batch)
                details = self.details(batch, self.reconstructions(batch))[:, self.crd_index]
                maps.append(self.step_discrepancy(batch, details).flatten(1, 2).cpu())
        self.discrepancy_norm = ResidualStandardizer().fit(torch.cat(maps))

    def crd_input(self, images: torch.Tensor, details: torch.Tensor,
                  recons: torch.Tensor | None = None) -> torch.Tensor:
        """Stack (B, S, C_in, h, w) for the CRD at its (pooled) resolution; ``details`` (and ``recons``,
        needed by crd_input=recon|both) hold every step in ``self.steps``; the CRD's steps are picked here."""
        details = details[:, self.crd_index]
        expanded = images.unsqueeze(1).expand_as(details)
        mode = self.cfg.rcae.crd_input
        if mode in ("recon", "both"):
            if recons is None:
                raise RuntimeError(f"crd_input={mode} needs the reconstructions I_R^n")
            recons = recons[:, self.crd_index]
            stack = torch.cat([recons, expanded] if mode == "recon" else [recons, details, expanded], dim=2)
        elif mode == "paper":
            stack = torch.cat([details, expanded], dim=2)
        else:
            if self.discrepancy_norm is None:
                raise RuntimeError("crd_input=discrepancy needs fit_discrepancy_norm() first")
            disc = self.step_discrepancy(images, details)
            z = self.discrepancy_norm(disc.flatten(1, 2)).unflatten(1, disc.shape[1:3]).expand_as(details)
            previous = torch.cat([expanded[:, :1], details[:, :-1]], dim=1)
            stack = torch.cat([z, (details - previous).abs(), expanded], dim=2)
        pool = self.cfg.rcae.crd_pool
        if pool > 1:
            b, s = stack.shape[:2]
            flat = F.avg_pool2d(stack.flatten(0, 1), pool)
            stack = flat.unflatten(0, (b, s))
        return stack

    def crd_logits(self, images: torch.Tensor, details: torch.Tensor,
                   recons: torch.Tensor | None = None) -> torch.Tensor:
        out = self.nets["crd"].logits(self.crd_input(images, details, recons))
        if out.shape[-2:] != images.shape[-2:]:
            out = F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return out


class RcAEScorer:
    """Raw maps -> anomaly maps of every scoring variant ``"<map kind>|<standardize>"``.

    Raw maps (B, 1, H, W): ``residual_final`` = mean_c |I - I_D^N|, ``residual_mean`` =
    mean_n mean_c |I - I_D^n|, ``crd`` = the CRD's logits (or sigmoid, ``rcae.crd_output``).
    ``pixel`` standardisation: z = (m - mu) / (sigma + floor) per pixel, mu and sigma over the
    held-out normals' maps (``ResidualStandardizer``). ``fused`` = mean of z(k) over the kinds k of
    ``rcae.fuse`` that the model has (default residual_gain, structure and crd; a model without a CRD
fuses the others) with per-pixel z under ``pixel`` and one global
    mean/std per map under ``none``; ``residual_centred`` / ``residual_gain`` / ``structure`` compare
    I with I_D^N ignoring a global offset (``photometric_switches.offset_free_maps``). Every map is
    then smoothed by a Gaussian of ``eval.smooth_sigma``; under ``eval.smooth_first`` the raw maps are
    smoothed instead, before the statistics are fitted and applied (z of the smoothed map).
    """

    def __init__(self, infer: RcAEInference, cfg: Config):
        self.infer, self.cfg = infer, cfg
        self.has_crd = "crd" in infer.nets
        self.kinds = [k for k in MAP_KINDS if self.has_crd or k != "crd"]
        if len(infer.steps) == 1:
            self.kinds = [k for k in self.kinds if k != "residual_mean"]
        # a rung without a CRD (ConvAE, RcAE without stage 3) fuses the kinds it has; info["fused"] names them
        self.fuse = [k for k in cfg.rcae.fuse if k in self.kinds]
        if not self.fuse:
            self.kinds.remove("fused")
        self.pixel: dict[str, ResidualStandardizer] = {}
        self.global_: dict[str, tuple[float, float]] = {}

    def resolve(self, kind: str) -> str:
        if kind == "auto":
            return "crd" if self.has_crd else "residual_final"
        if kind not in self.kinds:
            raise ValueError(f"eval.anomaly_map={kind!r} is not available here (available: {', '.join(self.kinds)})")
        return kind

    def raw_maps(self, images: torch.Tensor, offset_free: bool = True) -> dict[str, torch.Tensor]:
        """Raw maps plus ``recons`` / ``details`` stacks (B, S, 3, H, W) for the gallery; ``offset_free``
        False skips the offset-blind kinds (``predict`` of a map that needs none: latency as before)."""
        infer = self.infer
        if infer.normaliser is not None:
            images = infer.normaliser(images)
        recons = infer.reconstructions(images)
        details = infer.details(images, recons)
        disc = infer.step_discrepancy(images, details)[:, :, 0]  # (B, S, H, W)
        out = {"recons": recons, "details": details,
               "residual_final": disc[:, -1:], "residual_mean": disc.mean(dim=1, keepdim=True), "input": images}
        if offset_free:
            out.update(offset_free_maps(images, details[:, -1], self.cfg.rcae.structure))
        if self.has_crd:
            logits = infer.crd_logits(images, details, recons)
            out["crd"] = logits if self.cfg.rcae.crd_output == "logits" else torch.sigmoid(logits)
        return out

    def fit(self, normals: torch.Tensor, device: torch.device) -> "RcAEScorer":
        """Statistics of the raw maps of clean held-out normals (per pixel and global)."""
        kinds = [k for k in self.kinds if k != "fused"]
        maps: dict[str, list[torch.Tensor]] = {k: [] for k in kinds}
        with torch.inference_mode():
            for batch in _stats_batches(normals, self.cfg, device):
                raw = self.raw_maps(batch)
                for k in kinds:
                    maps[k].append(raw[k].float().cpu())
        for k in kinds:
            stacked = torch.cat(maps[k])
            if self.cfg.eval.smooth_first:
                stacked = gaussian_blur(stacked, self.cfg.eval.smooth_sigma)
            self.pixel[k] = ResidualStandardizer().fit(stacked)
            self.global_[k] = (stacked.mean().item(), stacked.std().item() + 1e-6)
        return self

    def _source(self, raw: dict[str, torch.Tensor], kind: str) -> torch.Tensor:
        """The raw map of ``kind`` as the statistics saw it: smoothed once per batch under ``eval.smooth_first``."""
        if not self.cfg.eval.smooth_first:
            return raw[kind]
        key = f"smoothed:{kind}"
        if key not in raw:
            raw[key] = gaussian_blur(raw[kind], self.cfg.eval.smooth_sigma)
        return raw[key]

    def _standardised(self, raw: dict[str, torch.Tensor], kind: str, standardize: str) -> torch.Tensor:
        if standardize == "pixel":
            return self.pixel[kind](self._source(raw, kind))
        return self._source(raw, kind)

    def variant_map(self, raw: dict[str, torch.Tensor], kind: str, standardize: str) -> torch.Tensor:
        kind = self.resolve(kind)
        if kind == "fused":
            parts = []
            for part in self.fuse:
                if standardize == "pixel":
                    parts.append(self._standardised(raw, part, standardize))
                else:
                    mean, std = self.global_[part]
                    parts.append((self._source(raw, part) - mean) / std)
            amap = torch.stack(parts).mean(dim=0)
        else:
            amap = self._standardised(raw, kind, standardize)
        return amap if self.cfg.eval.smooth_first else gaussian_blur(amap, self.cfg.eval.smooth_sigma)

    def variants(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every variant's map, plus ``auto|...`` aliases of the rung's own map."""
        out: dict[str, torch.Tensor] = {}
        for standardize in STANDARDIZE:
            for kind in self.kinds:
                out[f"{kind}|{standardize}"] = self.variant_map(raw, kind, standardize)
            out[f"auto|{standardize}"] = out[f"{self.resolve('auto')}|{standardize}"]
        return out

    def predict(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The configured map (``eval.anomaly_map`` | ``eval.standardize``) plus the gallery stacks."""
        kind = self.resolve(self.cfg.eval.anomaly_map)
        needed = set(self.fuse if kind == "fused" else [kind])
        raw = self.raw_maps(images, offset_free=bool(needed & set(OFFSET_FREE_KINDS)))
        out = {"map": self.variant_map(raw, self.cfg.eval.anomaly_map, self.cfg.eval.standardize),
               "recons": raw["recons"]}
        if "dpn" in self.infer.nets:
            out["details"] = raw["details"]
        return out

    def extra_maps(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every scoring variant (``variant:``) and, for RcAE, the per-depth signal (``diag:``)."""
        raw = self.raw_maps(images)
        out: dict[str, torch.Tensor] = {}
        if self.cfg.eval.scoring_variants:
            out.update({f"variant:{k}": v for k, v in self.variants(raw).items()})
        if self.cfg.eval.diagnostics and isinstance(self.infer.nets["ae"], RcAE):
            out.update({f"diag:{k}": v for k, v in self.diagnostics(images, raw).items()})
        return out

    def score(self, maps: torch.Tensor) -> torch.Tensor:
        """Image score: mean of the top-k pixels (``eval.top_k``)."""
        return topk_mean(maps, self.cfg.eval.top_k)

    def diagnostics(self, images: torch.Tensor, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-depth signal maps (smoothed, not standardised): ``recon@n`` = mean_c |I - I_R^n|,
        ``detail@n`` = mean_c |I - I_D^n| (with DPN), ``crd@all``."""
        sigma = self.cfg.eval.smooth_sigma
        images = raw.get("input", images)  # as the maps saw it (after rcae.normalise)
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
