"""Heatmap gallery of a report: figures for the best records of each category.

The artifact's format, its containment check and the figure of one image are ``suite.gallery``
(shared with MLflow tracking); this module picks the records and writes their figures.
``build_gallery`` lists an unreadable or misplaced gallery file as a warning, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from suite import aggregate as agg
from suite.gallery import DPI, REQUIRED, GalleryError, gallery_figure, gallery_path, load_gallery, save_gallery
from suite.reporting.plots import slug

__all__ = ["DPI", "REQUIRED", "GalleryError", "GalleryImage", "build_gallery", "gallery_figure", "gallery_path",
           "load_gallery", "save_gallery"]


@dataclass
class GalleryImage:
    path: Path
    dataset: str
    category: str
    label: str
    name: str
    score: float
    is_anomalous: bool


def build_gallery(
    frame: pd.DataFrame,
    out_dir: str | Path,
    max_records_per_category: int = 2,
    max_images_per_record: int = 4,
    split: str = "test",
) -> tuple[list[GalleryImage], list[str]]:
    """Figures for ok records with a gallery artifact, best ``<split>.i_auroc`` first, a few per category.

    Returns the images written and warnings (unreadable or malformed galleries; never fatal).
    """
    out_dir = Path(out_dir)
    written: list[GalleryImage] = []
    warnings: list[str] = []
    if frame.empty or "gallery" not in frame:
        return written, warnings
    ok = agg.ok_records(frame)
    ok = ok[ok["gallery"].notna()]
    score_col = f"{split}.i_auroc"
    for dataset, category in agg.ordered_categories(ok):
        group = ok[(ok["dataset"] == dataset) & (ok["category"] == category)]
        if score_col in group:
            group = group.assign(_s=pd.to_numeric(group[score_col], errors="coerce").fillna(-1.0))
            group = group.sort_values("_s", ascending=False, kind="stable")
        for _, rec in group.head(max_records_per_category).iterrows():
            try:  # containment first: nothing outside the record's folder is tested or opened
                path = gallery_path(rec.get("record_path"), rec["gallery"])
            except GalleryError as err:
                warnings.append(str(err))
                continue
            if not path.is_file():
                warnings.append(f"gallery file missing: {path} (record {rec['record_path']})")
                continue
            try:
                data = load_gallery(path)
            except GalleryError as err:
                warnings.append(str(err))
                continue
            maps = np.asarray(data["maps"], dtype=float)
            # One colour scale per record, so the maps of its images compare directly.
            map_range = (float(np.nanmin(maps)), float(np.nanmax(maps)))
            count = min(len(data["images"]), max_images_per_record)
            for k in range(count):
                name = str(data["names"][k])
                score = float(data["scores"][k])
                anomalous = bool(int(data["labels"][k]))
                title = (
                    f"{category} · {name} · score {score:.4g} · {'anomalous' if anomalous else 'normal'}\n"
                    f"{rec['label']} (trial {rec.get('trial_id')})"
                )
                record_id = rec.get("trial_id") or f"{rec.get('config_hash')}_s{rec.get('seed')}"
                fname = f"{slug(record_id)}_{k:02d}_{slug(Path(name).stem)}.png"
                out = out_dir / slug(f"{dataset}_{category}") / fname
                gallery_figure(data, k, out, title, map_range)
                written.append(GalleryImage(out, str(dataset), str(category), str(rec["label"]), name, score,
                                            anomalous))
    return written, warnings

