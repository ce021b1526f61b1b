"""rcsuite: a Ray-distributed hyperparameter and benchmark suite for recursive-reconstruction
anomaly detection (RcAE / DPN / CRD and baselines) on MVTec AD, VisA and user data."""

__version__ = "0.1.0"
