"""Noise level of the FAE baseline (noise & pattern filtering AE): the maximum std of the Gaussian
noise added to both input and target during training (the std is drawn in [fae.noise_std_min, max]).
"""

BASE = {"model.method": "fae"}

SPACE = {
    "fae.noise_std": {"type": "float", "low": 0.0, "high": 0.2},
}
