"""Per-method stage wiring: each module exposes ``train(ctx: TrainContext) -> TrainedMethod``."""
