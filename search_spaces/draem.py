"""DRAEM's anomaly simulation: how often a training image gets a Perlin-noise texture anomaly and
how large the anomalies are (the Perlin mask threshold: higher = smaller, sparser regions).
"""

BASE = {"model.method": "draem"}

SPACE = {
    "draem.anomaly_prob": {"type": "float", "low": 0.3, "high": 0.9},
    "draem.perlin_threshold": {"type": "float", "low": 0.3, "high": 0.7},
}
