"""Write shift-stress copies of an MVTec-layout category (issue 19) into a folder outside the repository.

From ``<data dir>/mvtec_bottle_256/bottle`` (``$RCSUITE_DATA_DIR``, else ``<repo>/../shared/data``,
the folder the tests read) it writes, under ``--out`` (default: a new temporary folder):

    bottle_dark8       test/good 8 % darker (x 0.92); train and defective test images unchanged
    bottle_gray        R = G = B (BT.601 luminance, stored as 8-bit grey) in train and test
    bottle_gray_dark8  both: grey everywhere, test/good then 8 % darker
    bottle_bright8     test/good 8 % brighter (x 1.08, clipped at 255); used for no choice
    bottle_gamma12     test/good with gamma 1.2 (255 (x / 255)^1.2); used for no choice

Each is a complete category in the MVTec layout (``train/good``, ``test/<defect>``,
``ground_truth/<defect>`` with the masks copied unchanged), loaded with the ``folder`` dataset::

    python benchmarks/stress_categories.py --out /tmp/rcsuite-stress
    python run_suite.py ... data.dataset=folder data.root=/tmp/rcsuite-stress data.category=bottle_dark8

Pixel changes are made on the 8-bit values and rounded to the nearest level (so "8 % darker" is
exact up to half a grey level). The darkened categories are test sets, never selection sets.
A ``stress.json`` in each category folder records its source and transform; a category whose
``stress.json`` matches is left as it is (``--force`` rewrites it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suite.data import shared_data_dir  # noqa: E402
from suite.data.common import is_image_name  # noqa: E402

SOURCE_DATASET = "mvtec_bottle_256"
SOURCE_CATEGORY = "bottle"
GOOD = "good"

# name suffix -> (grey train and test, transform of test/good or None, description)
STRESS = {
    "dark8": (False, "scale:0.92", "test/good 8 % darker"),
    "gray": (True, None, "R = G = B in train and test"),
    "gray_dark8": (True, "scale:0.92", "R = G = B in train and test, test/good 8 % darker"),
    "bright8": (False, "scale:1.08", "test/good 8 % brighter (used for no choice)"),
    "gamma12": (False, "gamma:1.2", "test/good gamma 1.2 (used for no choice)"),
}


def default_source_root() -> Path:
    return shared_data_dir() / SOURCE_DATASET


def _pixel_transform(spec: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    if spec is None:
        return None
    kind, value = spec.split(":")
    factor = float(value)
    if kind == "scale":
        return lambda v: v * factor
    if kind == "gamma":
        return lambda v: 255.0 * (v / 255.0) ** factor
    raise ValueError(f"unknown stress transform {spec!r}")


def _write_image(src: Path, dst: Path, grey: bool, transform: Callable[[np.ndarray], np.ndarray] | None) -> None:
    if not grey and transform is None:
        shutil.copyfile(src, dst)
        return
    with Image.open(src) as image:
        # "L" is BT.601 luminance (0.299 R + 0.587 G + 0.114 B), rounded; the suite's loader turns
        # a grey file back into R = G = B.
        image = image.convert("L" if grey else "RGB")
    values = np.asarray(image, dtype=np.float64)
    if transform is not None:
        values = transform(values)
    out = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    Image.fromarray(out, mode="L" if grey else "RGB").save(dst)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p))


def _refuse_inside_repo(out_root: Path) -> None:
    real = Path(os.path.realpath(out_root))
    if real == REPO or real.is_relative_to(REPO):
        raise SystemExit(f"refusing to write stress categories inside the repository ({real}); use a folder outside it")


def write_category(source: Path, target: Path, grey: bool, transform_spec: str | None) -> dict[str, int]:
    """Copy one MVTec-layout category ``source`` to ``target``, with grey conversion (everything)
    and ``transform_spec`` (test/good only). Returns how many files went where."""
    transform = _pixel_transform(transform_spec)
    counts = {"train": 0, "test_good": 0, "test_defect": 0, "masks": 0}
    if target.exists():
        shutil.rmtree(target)
    (target / "train" / GOOD).mkdir(parents=True)
    for src in _image_files(source / "train" / GOOD):
        _write_image(src, target / "train" / GOOD / src.name, grey, None)
        counts["train"] += 1
    for defect_dir in sorted(p for p in (source / "test").iterdir() if p.is_dir() and not p.name.startswith(".")):
        (target / "test" / defect_dir.name).mkdir(parents=True)
        good = defect_dir.name == GOOD
        for src in _image_files(defect_dir):
            _write_image(src, target / "test" / defect_dir.name / src.name, grey, transform if good else None)
            counts["test_good" if good else "test_defect"] += 1
    ground_truth = source / "ground_truth"
    if ground_truth.is_dir():
        for defect_dir in sorted(p for p in ground_truth.iterdir() if p.is_dir() and not p.name.startswith(".")):
            (target / "ground_truth" / defect_dir.name).mkdir(parents=True)
            for src in _image_files(defect_dir):
                shutil.copyfile(src, target / "ground_truth" / defect_dir.name / src.name)
                counts["masks"] += 1
    return counts


def write_stress_categories(
    out_root: str | Path,
    source_root: str | Path | None = None,
    category: str = SOURCE_CATEGORY,
    names: list[str] | None = None,
    force: bool = False,
) -> dict[str, Path]:
    """Write the stress copies of ``<source_root>/<category>`` under ``out_root``; returns
    ``{category name: folder}`` (e.g. ``"bottle_dark8"``). ``names`` picks suffixes of ``STRESS``
    (default all)."""
    out_root = Path(out_root)
    _refuse_inside_repo(out_root)
    source_root = default_source_root() if source_root is None else Path(source_root)
    source = source_root / category
    if not (source / "train" / GOOD).is_dir():
        raise FileNotFoundError(
            f"no category {category!r} at {source} (set RCSUITE_DATA_DIR to the folder holding {SOURCE_DATASET})"
        )
    unknown = sorted(set(names or []) - set(STRESS))
    if unknown:
        raise ValueError(f"unknown stress categories {unknown}; valid: {', '.join(STRESS)}")
    out_root.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for suffix in names or list(STRESS):
        grey, transform_spec, description = STRESS[suffix]
        name = f"{category}_{suffix}"
        target = out_root / name
        manifest = {
            "source": str(source.resolve()), "grey": grey, "test_good_transform": transform_spec,
            "description": description,
        }
        marker = target / "stress.json"
        if not force and marker.is_file() and json.loads(marker.read_text()) == manifest:
            written[name] = target
            continue
        counts = write_category(source, target, grey, transform_spec)
        marker.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"{name}: {description}; {counts['train']} train, {counts['test_good']} test/good, "
              f"{counts['test_defect']} defective test images, {counts['masks']} masks -> {target}")
        written[name] = target
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder, outside the repository (default: a new temporary folder)")
    parser.add_argument("--source", help=f"folder holding the category (default: <data dir>/{SOURCE_DATASET})")
    parser.add_argument("--category", default=SOURCE_CATEGORY)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(STRESS)}")
    parser.add_argument("--force", action="store_true", help="rewrite categories that already exist")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rcsuite-stress-"))
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    written = write_stress_categories(out, args.source, args.category, names, args.force)
    print(f"\nstress categories under {out}; use e.g.:")
    for name in written:
        print(f"  data.dataset=folder data.root={out} data.category={name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
