"""RcAEScorer: the scoring variants on hand-made maps (suite/methods/rcae/scorer.py)."""

import numpy as np
import pytest
import torch

from suite import metrics as M
from suite.config import build_config
from suite.methods.rcae.scorer import RcAEInference, RcAEScorer
from suite.methods.rcae.networks import build_networks


OFFSET_FREE = ("residual_centred", "residual_gain", "structure")


class HandMadeScorer(RcAEScorer):
    """Raw maps come from a lookup (keyed by the first pixel of the image), not from networks."""

    def __init__(self, cfg, table, with_crd=True):
        nets = build_networks(cfg)
        if not with_crd:
            nets.pop("crd", None)
        super().__init__(RcAEInference(nets, cfg, [1, 2], [1, 2]), cfg)
        self.kinds = [k for k in self.kinds if k not in OFFSET_FREE]  # the table holds the paper-era kinds only
        self.table = table

    def raw_maps(self, images):
        rows = [self.table[round(float(img[0, 0, 0]) * 100)] for img in images]
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def image(i):
    return torch.full((3, 8, 8), i / 100)


def test_variants_agree_when_normals_have_no_per_pixel_structure():
    """Constant normal statistics make every standardisation a monotone transform: the pixel
    ranking (P-AUROC) is the same under none and pixel; the CRD oracle map (= the mask) scores 1."""
    cfg = build_config(preset="tiny", overrides=["eval.smooth_sigma=0", "rcae.photometric=paper"])
    mask = torch.zeros(1, 8, 8)
    mask[0, 2:4, 2:4] = 1
    rng = torch.Generator().manual_seed(0)
    table = {}
    for i in range(6):  # normals: uniform noise maps, the same distribution at every pixel
        table[i] = {"residual_final": torch.rand(1, 8, 8, generator=rng),
                    "residual_mean": torch.rand(1, 8, 8, generator=rng),
                    "crd": torch.zeros(1, 8, 8)}
    scorer = HandMadeScorer(cfg, table)
    scorer.fit(torch.stack([image(i) for i in range(6)]), torch.device("cpu"))
    for sc in scorer.pixel.values():  # make the statistics exactly constant over pixels
        sc.mean.fill_(sc.mean.mean().item())
        sc.std.fill_(sc.std.mean().item())
    anomalous = {"residual_final": 0.5 + mask, "residual_mean": 0.5 + 0.5 * mask, "crd": mask.clone()}
    raw = {k: v.unsqueeze(0) for k, v in anomalous.items()}
    variants = scorer.variants(raw)
    labels = mask.flatten().numpy().astype(int)
    for kind in ("residual_final", "residual_mean", "crd", "fused"):
        aurocs = [M.auroc(labels, variants[f"{kind}|{s}"].flatten().numpy()) for s in ("none", "pixel")]
        assert aurocs[0] == pytest.approx(aurocs[1]) == pytest.approx(1.0), kind
    assert torch.equal(variants["auto|pixel"], variants["crd|pixel"])


def test_pixel_standardisation_removes_structure_that_every_normal_has():
    """Normals leave a strong residual on one edge column; pixel z-scores divide it out, so a
    weaker defect elsewhere outranks it (none ranks the edge first)."""
    cfg = build_config(preset="tiny", overrides=["eval.smooth_sigma=0", "rcae.photometric=paper"])
    rng = torch.Generator().manual_seed(1)
    table = {}
    for i in range(8):
        m = 0.05 * torch.rand(1, 8, 8, generator=rng)
        m[0, :, 7] += 1.0 + 0.1 * torch.rand(8, generator=rng)
        table[i] = {"residual_final": m, "residual_mean": m.clone()}
    scorer = HandMadeScorer(cfg, table, with_crd=False)
    scorer.fit(torch.stack([image(i) for i in range(8)]), torch.device("cpu"))
    test = table[0]["residual_final"].clone()
    test[0, 3, 3] += 0.6
    variants = scorer.variants({"residual_final": test.unsqueeze(0), "residual_mean": test.unsqueeze(0)})
    top = {s: int(variants[f"residual_final|{s}"].flatten().argmax()) for s in ("none", "pixel")}
    assert top["pixel"] == 3 * 8 + 3 and top["none"] % 8 == 7
    # no CRD: "fused" fuses what the model has (here residual_final alone, so it is that map)
    kinds = ("auto", "residual_final", "residual_mean", "fused")
    assert set(variants) == {f"{k}|{s}" for k in kinds for s in ("none", "pixel")} and scorer.fuse == ["residual_final"]
    assert torch.allclose(variants["fused|pixel"], variants["residual_final|pixel"])
    with pytest.raises(ValueError, match="not available"):
        scorer.resolve("crd")


def test_smooth_first_fits_the_statistics_on_smoothed_maps_and_tames_a_patch_that_never_varied():
    """Normals: noise everywhere but a 3x3 patch that is the same in all of them (its σ is 0, so only
    the floor divides it). A test map with an ordinary noise level in that patch and a blob elsewhere:
    z of the raw map, smoothed afterwards, ranks the patch first; z of the smoothed map (whose σ there
    comes from the neighbours' noise) ranks the blob first, and equals the explicit computation."""
    from suite.scoring import ResidualStandardizer, gaussian_blur

    rng = torch.Generator().manual_seed(0)
    n = 16
    table = {}
    for i in range(n):
        m = torch.rand(1, 16, 16, generator=rng)
        m[0, 3:6, 3:6] = 0.5
        table[i] = {"residual_final": m, "residual_mean": m.clone()}
    test = torch.rand(1, 16, 16, generator=rng)
    test[0, 3:6, 3:6] = 0.8
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    test = test + 0.8 * torch.exp(-((yy - 11) ** 2 + (xx - 11) ** 2) / 4.0)
    raw = {"residual_final": test.unsqueeze(0), "residual_mean": test.unsqueeze(0)}
    normals = torch.stack([image(i) for i in range(n)])
    top, maps = {}, {}
    for first in (False, True):
        cfg = build_config(preset="tiny", overrides=["eval.smooth_sigma=1.5", "rcae.photometric=paper",
                                                     f"eval.smooth_first={str(first).lower()}"])
        scorer = HandMadeScorer(cfg, table, with_crd=False).fit(normals, torch.device("cpu"))
        maps[first] = scorer.variants({k: v.clone() for k, v in raw.items()})["residual_final|pixel"]
        top[first] = divmod(int(maps[first].flatten().argmax()), 16)
    assert max(abs(top[False][0] - 4), abs(top[False][1] - 4)) <= 1, top  # the patch that never varied
    assert max(abs(top[True][0] - 11), abs(top[True][1] - 11)) <= 1, top  # the blob
    stacked = gaussian_blur(torch.stack([table[i]["residual_final"] for i in range(n)]), 1.5)
    expected = ResidualStandardizer().fit(stacked)(gaussian_blur(raw["residual_final"], 1.5))
    assert torch.allclose(maps[True], expected, atol=1e-6)
