"""DRAEM's anomaly simulation (paper Sec. 3.3): Perlin-noise masks filled with textures.

For each training image ``I`` (B, C, H, W in [0, 1]), with probability ``anomaly_prob``:

1. Perlin noise ``P`` (``perlin_noise``) with ``2**e_y x 2**e_x`` lattice cells over the image
   (exponents uniform in [perlin_scale_min, perlin_scale_max]), sampled at pixel centres, its
   sampling grid rotated by a random angle in ``[-perlin_rotation, perlin_rotation]`` degrees;
2. the mask ``M = [P > perlin_threshold]`` (binary; it may come out empty, as in the reference code);
3. the anomaly source ``A``: a texture of the bank (DTD or procedural), resized to H x W and, with
   ``texture_augment``, randomly flipped, rotated (reflection padding), gamma-adjusted per channel
   (gamma ~ U(0.5, 2)) and brightness-changed (x U(0.8, 1.2) + U(-30, 30) / 255), then clipped to [0, 1];
4. the blend of the paper with opacity ``beta ~ U(opacity[0], opacity[1])``::

       I_a = (1 - M) ⊙ I + (1 - beta) (M ⊙ I) + beta (M ⊙ A)

   i.e. pixels outside the mask are untouched and inside they become ``(1 - beta) I + beta A``.
   (The reference code weights A by 1 - beta' with beta' ~ U(0, 0.8), i.e. an opacity in (0.2, 1].)

Otherwise the image is returned unchanged with an empty mask. Everything random comes from the
given CPU ``torch.Generator``, so a seed fixes the result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from suite.data.occluders import procedural_textures


def _uniform(gen: torch.Generator | None, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=gen))


def _randint(gen: torch.Generator | None, low: int, high: int) -> int:
    """Uniform integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def _fade(t: torch.Tensor) -> torch.Tensor:
    # Perlin's quintic 6t^5 - 15t^4 + 10t^3: zero first and second derivatives at 0 and 1.
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(height: int, width: int, cells_y: float, cells_x: float,
                 generator: torch.Generator | None = None, angle: float = 0.0) -> torch.Tensor:
    """2D gradient (Perlin) noise, (height, width) float32, values in about [-1, 1].

    Pixel (i, j) sits at lattice coordinates ``((i + 0.5) cells_y / height, (j + 0.5) cells_x / width)``
    (its centre; ``cells`` may be fractional), rotated by ``angle`` degrees about the image centre.
    A unit gradient of angle ``2 pi U(0, 1)`` is drawn for each lattice point; the value is
    ``sqrt(2)`` times the quintic-faded bilinear blend of the four corner dot products
    ``g_corner . (p - corner)``, so it is 0 on lattice points and within [-1, 1].
    """
    if cells_y <= 0 or cells_x <= 0:
        raise ValueError(f"perlin_noise needs positive cell counts, got {cells_y}, {cells_x}")
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) * (cells_y / height)
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) * (cells_x / width)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    if angle:
        theta = math.radians(angle)
        cy, cx = cells_y / 2, cells_x / 2
        dy, dx = y - cy, x - cx
        y = cy + math.cos(theta) * dy - math.sin(theta) * dx
        x = cx + math.sin(theta) * dy + math.cos(theta) * dx
    # Shift to non-negative lattice coordinates (a translation of the noise field).
    y = y - torch.floor(y.min())
    x = x - torch.floor(x.min())
    y0, x0 = torch.floor(y).long(), torch.floor(x).long()
    fy, fx = y - y0, x - x0
    lattice = (int(y0.max()) + 2, int(x0.max()) + 2)
    angles = 2 * math.pi * torch.rand(lattice, generator=generator, dtype=torch.float64)
    gy, gx = torch.sin(angles), torch.cos(angles)

    def corner(oy: int, ox: int) -> torch.Tensor:
        iy, ix = y0 + oy, x0 + ox
        return gy[iy, ix] * (fy - oy) + gx[iy, ix] * (fx - ox)

    u, v = _fade(fy), _fade(fx)
    top = torch.lerp(corner(0, 0), corner(0, 1), v)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), v)
    return (math.sqrt(2.0) * torch.lerp(top, bottom, u)).float()


def perlin_mask(height: int, width: int, cfg, generator: torch.Generator | None = None) -> torch.Tensor:
    """One anomaly mask, bool (height, width): thresholded Perlin noise with random scale and rotation."""
    ey = _randint(generator, cfg.perlin_scale_min, cfg.perlin_scale_max)
    ex = _randint(generator, cfg.perlin_scale_min, cfg.perlin_scale_max)
    angle = _uniform(generator, -cfg.perlin_rotation, cfg.perlin_rotation)
    return perlin_noise(height, width, 2.0**ey, 2.0**ex, generator, angle) > cfg.perlin_threshold


def _rotate(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate (C, H, W) about its centre, bilinear, reflection padding."""
    theta = math.radians(degrees)
    matrix = torch.tensor([[math.cos(theta), -math.sin(theta), 0.0], [math.sin(theta), math.cos(theta), 0.0]],
                          dtype=image.dtype).unsqueeze(0)
    grid = F.affine_grid(matrix, [1, *image.shape], align_corners=False)
    return F.grid_sample(image.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)[0]


def anomaly_source(textures: torch.Tensor, height: int, width: int, generator: torch.Generator | None = None,
                   augment: bool = True) -> torch.Tensor:
    """A random texture of the bank (T, 3, h, w) as a (3, height, width) anomaly source in [0, 1]."""
    texture = textures[_randint(generator, 0, textures.shape[0] - 1)].float()
    if texture.shape[-2:] != (height, width):
        texture = F.interpolate(texture.unsqueeze(0), size=(height, width), mode="bilinear", align_corners=False,
                                antialias=texture.shape[-1] > width or texture.shape[-2] > height)[0]
    if not augment:
        return texture.clamp(0.0, 1.0)
    if _randint(generator, 0, 1):
        texture = texture.flip(-1)
    if _randint(generator, 0, 1):
        texture = texture.flip(-2)
    texture = _rotate(texture, _uniform(generator, -45.0, 45.0))
    gamma = 0.5 + 1.5 * torch.rand(texture.shape[0], 1, 1, generator=generator)
    texture = texture.clamp(0.0, 1.0) ** gamma
    texture = texture * _uniform(generator, 0.8, 1.2) + _uniform(generator, -30.0, 30.0) / 255.0
    return texture.clamp(0.0, 1.0)


def check_synthesis_cfg(cfg) -> None:
    """ValueError naming the key for settings ``synthesize`` cannot use."""
    if not 0.0 <= cfg.anomaly_prob <= 1.0:
        raise ValueError(f"config key 'draem.anomaly_prob' must be in [0, 1], got {cfg.anomaly_prob}")
    if not 0 <= cfg.perlin_scale_min <= cfg.perlin_scale_max:
        raise ValueError(
            f"config keys 'draem.perlin_scale_min' / 'draem.perlin_scale_max' must satisfy 0 <= min <= max, "
            f"got {cfg.perlin_scale_min}, {cfg.perlin_scale_max}"
        )
    lo, hi = cfg.opacity if len(cfg.opacity) == 2 else (-1.0, -1.0)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(
            f"config key 'draem.opacity' must be [low, high] with 0 <= low <= high <= 1, got {cfg.opacity}"
        )


def synthesize(batch: torch.Tensor, cfg, generator: torch.Generator | None = None,
               textures: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulated anomalies for a batch; returns ``(augmented, masks)`` on ``batch``'s device.

    ``batch``: (B, C, H, W) in [0, 1], C = 3 (or 1: sources are turned grey). ``cfg``: a
    ``DRAEMConfig``. ``textures``: (T, 3, h, w) in [0, 1]; None = one procedural texture made per
    anomalous image. ``masks``: float (B, 1, H, W) in {0, 1}, the thresholded Perlin mask of each
    anomalous image (zeros for images left unchanged); outside it ``augmented == batch`` exactly.
    """
    if batch.dim() != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(f"synthesize expects images of shape (B, 1 or 3, H, W), got {tuple(batch.shape)}")
    check_synthesis_cfg(cfg)
    images = batch.detach().cpu()
    n, channels, height, width = images.shape
    augmented = images.clone()
    masks = torch.zeros(n, 1, height, width, dtype=images.dtype)
    for i in range(n):
        if float(torch.rand((), generator=generator)) >= cfg.anomaly_prob:
            continue
        mask = perlin_mask(height, width, cfg, generator)
        if not mask.any():
            continue
        bank = textures if textures is not None else procedural_textures(1, max(height, width), generator)
        source = anomaly_source(bank, height, width, generator, cfg.texture_augment)
        if channels == 1:
            source = source.mean(dim=0, keepdim=True)
        beta = _uniform(generator, cfg.opacity[0], cfg.opacity[1])
        blended = (1.0 - beta) * images[i] + beta * source.to(images.dtype)
        augmented[i] = torch.where(mask, blended, images[i])
        masks[i, 0] = mask.to(images.dtype)
    return augmented.to(batch.device), masks.to(batch.device)
