"""TensorBoard: per-epoch event files of each (trial, category) under ``<sweep>/tensorboard/``.

``torch.utils.tensorboard.SummaryWriter`` writes the same per-epoch scalars as MLflow, flushed every
epoch, to ``<sweep>/tensorboard/<trial_id>/<category>/``; steps already in the files are skipped on
a restart. ``tensorboard --logdir runs/sweeps/<name>/tensorboard`` shows them (``--logdir
runs/sweeps/<name>`` adds Tune's own per-report files in ``tune-*/`` when tensorboardX is installed).
"""

from __future__ import annotations

from pathlib import Path


def _tensorboard_steps(folder: Path) -> dict[str, set[int]]:
    """Steps per scalar tag already in the event files of ``folder``."""
    if not any(folder.glob("events.out.tfevents.*")):
        return {}
    # optional extra [tracking]: only with --tensorboard
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    acc.Reload()
    return {tag: {e.step for e in acc.Scalars(tag)} for tag in acc.Tags().get("scalars", [])}


class EventFiles:
    """The TensorBoard half of ``suite.tracking.tracker.TrialTracker``. Expects ``spec``,
    ``trial_id``, ``category``, ``_writer`` and ``_tb_steps`` on the instance."""

    def _open_tensorboard(self) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package

        folder = Path(self.spec.tensorboard_dir) / self.trial_id / self.category
        folder.mkdir(parents=True, exist_ok=True)
        self._tb_steps = _tensorboard_steps(folder)
        self._writer = SummaryWriter(log_dir=str(folder), flush_secs=30)

    def _write_scalars(self, values: dict[str, float], step: int) -> None:
        wrote = False
        for tag, value in values.items():
            if step in self._tb_steps.get(tag, ()):
                continue
            self._writer.add_scalar(tag, value, step)
            self._tb_steps.setdefault(tag, set()).add(step)
            wrote = True
        if wrote:
            self._writer.flush()  # a killed trial keeps what it wrote; a retry does not replay it

    def _close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass
