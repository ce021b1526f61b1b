"""Build the whole report of one or more run folders from their stored TrialRecord files.

    build_report(["runs/sweep_a", "runs/sweep_b"], "reports/sweep_ab", select_on="val")

writes into the output folder (a new ``-2``, ``-3``... sibling when it exists and is not empty):

- ``records.csv``: one row per record (config.*, <split>.<metric>, cost.*, time.*, status, label)
- ``summary.md``: best configuration per category and pooled, selection fidelity (val vs test
  rank correlation), failures, missing results, parameter importances
- ``comparison.md|csv|tex``: per-category table, configurations as columns
- ``ablations.md|csv|tex``: one table per ablation space of ``search_spaces/`` (records carrying its
  ablation ids) next to the published numbers the space file gives
- ``scorings.md|csv|tex``: the same models under every scoring variant (records' ``scorings``)
- ``per_depth.md|csv|tex`` and ``plots/per_depth_*``: which recursion steps carry signal
  (records' ``diagnostics``)
- ``robustness.md|csv|tex`` and ``plots/robustness_*``: test metrics under ``eval.shifts`` per
  configuration (records' ``shifts``); summary.md also shows the data-shift check per category
- ``plots/``: accuracy vs latency / GFLOPs (PNG + SVG) with Pareto fronts (``pareto.md``) and
  response curves
- ``gallery/``: heatmap figures from the records' gallery artifacts
- ``index.md`` and a self-contained ``index.html``

Nothing is trained and neither torch nor ray is imported.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from suite import aggregate as agg
from suite.reporting import gallery as gallery_mod
from suite.reporting import plots
from suite.reporting.index import Item, Section, write_index
from suite.reporting.ablations import ablation_tables
from suite.reporting.comparison import comparison_tables
from suite.reporting.diagnostics import per_depth_stats, per_depth_tables, scoring_tables
from suite.reporting.robustness import robustness_figures, robustness_tables
from suite.reporting.footer import footer_text
from suite.reporting.summary import summary_markdown
from suite.reporting.table import Table

log = logging.getLogger(__name__)
DETAIL_METRICS = ("aupro", "p_f1max", "i_f1max")


def resolve_out_dir(out_dir: str | Path) -> tuple[Path, bool]:
    """``out_dir`` if it is absent or empty, else the first absent-or-empty ``out_dir-2``, ``-3``...

    Returns (folder, redirected). The folder is created.
    """
    base = Path(out_dir)
    candidate = base
    n = 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate, candidate != base


def _write_tables(path_stem: Path, heading: str, tables: list[Table], preface: str = "") -> None:
    md = [f"# {heading}", ""]
    if preface:
        md += [preface, ""]
    md += [t.to_markdown() for t in tables]
    path_stem.with_suffix(".md").write_text("\n".join(md))
    if tables:
        tex = [f"% {heading} -- needs \\usepackage{{booktabs}}\n"] + [t.to_latex() for t in tables]
        path_stem.with_suffix(".tex").write_text("\n".join(tex))


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and pd.to_numeric(agg.ok_records(frame)[column], errors="coerce").notna().any()


def _table_items(stem: str, label: str) -> list[Item]:
    return [Item("markdown", Path(f"{stem}.md"), f"{label} (Markdown)"),
            Item("file", Path(f"{stem}.csv"), f"{stem}.csv"),
            Item("file", Path(f"{stem}.tex"), f"{stem}.tex")]


def _scoring_section(frame: pd.DataFrame, target: Path, split: str) -> Section:
    """``scorings.md|csv|tex`` from the records' ``scorings`` (absent in older records)."""
    tables = scoring_tables(frame, split)
    if not tables:
        return Section(
            "Scoring variants", [], "No record carries scoring variants (records before version 2, or baselines only)."
        )
    _write_tables(target / "scorings", "Scoring variants", tables)
    pd.concat([t.numeric for t in tables], ignore_index=True).to_csv(target / "scorings.csv", index=False)
    return Section("Scoring variants", _table_items("scorings", "scoring variants"))


# What a section says where ``build_report(figures=False)`` left its figures out.
NO_FIGURES = "Figures not drawn (report built with `--no-figures`)."


def _per_depth_section(frame: pd.DataFrame, target: Path, plot_dir: Path, split: str, figures: bool) -> Section:
    """``per_depth.md|csv|tex`` and one figure per table from the records' ``diagnostics``."""
    title = "Per-depth signal (which recursion steps carry signal)"
    tables = per_depth_tables(frame, split)
    if not tables:
        return Section(
            title, [], "No record carries per-depth diagnostics (records before version 2, or baselines only)."
        )
    stats, _ = per_depth_stats(frame, split)
    _write_tables(target / "per_depth", title, tables)
    stats.to_csv(target / "per_depth.csv", index=False)
    items = _table_items("per_depth", "per-depth signal")
    if not figures:
        return Section(title, items, NO_FIGURES)
    drawn = plots.per_depth_figures(stats, plot_dir, split)
    for fig in drawn:
        items.append(Item("image", fig.png.relative_to(target), fig.title))
        items.append(Item("file", fig.svg.relative_to(target), fig.svg.name))
    shown = "" if len(drawn) == len(tables) else f"Figures for the first {len(drawn)} of {len(tables)} tables."
    return Section(title, items, shown)


def _robustness_section(frame: pd.DataFrame, target: Path, plot_dir: Path, figures: bool) -> Section:
    """``robustness.md|csv|tex`` and accuracy-vs-shift figures from the records' ``shifts``."""
    tables = robustness_tables(frame, footer_text(frame))
    if not tables:
        return Section("Robustness to test-set shifts", [], "No record carries shifted test metrics (`eval.shifts` "
                       "empty, or records before version 6).")
    _write_tables(target / "robustness", "Robustness to test-set shifts", tables)
    pd.concat([t.numeric for t in tables], ignore_index=True).to_csv(target / "robustness.csv", index=False)
    items = _table_items("robustness", "robustness")
    if not figures:
        return Section("Robustness to test-set shifts", items, NO_FIGURES)
    for fig in robustness_figures(frame, plot_dir):
        items += [Item("image", fig.png.relative_to(target), fig.title), Item("file", fig.svg.relative_to(target),
                                                                                 fig.svg.name)]
    return Section("Robustness to test-set shifts", items)


def build_report(
    run_dirs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    select_on: str = "val",
    *,
    split: str = "test",
    gallery_per_category: int = 2,
    gallery_images: int = 4,
    figures: bool = True,
) -> Path:
    """Write the report of the records under ``run_dirs`` into ``out_dir``; returns ``index.md``.

    ``select_on`` is the split whose I-AUROC picks configurations (best per category, ablation
    rows, response-curve slices); ``split`` is the split whose metrics are reported.
    ``figures=False`` (``report --no-figures``) writes every table and no figure: no per-depth,
    robustness, accuracy-vs-cost or response-curve plot and no heatmap gallery. Drawing is most of a
    report's time (about 0.2 s per figure, each written as PNG and SVG).
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    run_dirs = [Path(d) for d in run_dirs]
    if select_on not in agg.SPLITS:
        raise ValueError(f"select_on must be one of {agg.SPLITS}, got {select_on!r}")
    started = time.time()
    record_set = agg.load_records(*run_dirs)  # before creating the folder: a bad path fails cleanly
    frame = agg.records_frame(record_set)
    target, redirected = resolve_out_dir(out_dir)
    if redirected:
        message = f"report folder {out_dir} exists and is not empty; writing to {target} instead"
        log.info(message)
        print(message, file=sys.stderr)  # always visible, whatever the logging setup
    agg.frame_for_csv(frame).to_csv(target / "records.csv", index=False)
    sections: list[Section] = []

    # per-category comparison
    main = comparison_tables(frame, ("i_auroc", "p_auroc"), split)
    detail_metrics = [m for m in DETAIL_METRICS if _has_values(frame, f"{split}.{m}")]
    detail = comparison_tables(frame, detail_metrics, split, name="comparison_detail") if detail_metrics else []
    _write_tables(
        target / "comparison",
        "Per-category comparison",
        main + detail,
        "" if main else "No ok record has test metrics; nothing to compare (see summary.md for failures).",
    )
    comparison_items = [Item("markdown", Path("comparison.md"), "comparison (Markdown)")]
    if main:
        numeric = pd.concat([t.numeric for t in main], ignore_index=True)
        if detail:
            extra = pd.concat([t.numeric for t in detail], ignore_index=True)
            extra = extra[["dataset", "category", *(c for c in extra.columns if c not in numeric.columns)]]
            numeric = numeric.merge(extra, on=["dataset", "category"], how="left")
        numeric.to_csv(target / "comparison.csv", index=False)
        comparison_items += [
            Item("file", Path("comparison.csv"), "comparison.csv"),
            Item("file", Path("comparison.tex"), "comparison.tex"),
        ]
    sections.append(Section("Per-category comparison", comparison_items))

    # ablations
    results = ablation_tables(frame, select_on, split)
    written = [r.table for r in results if r.table is not None]
    skipped = [r.ablation.title for r in results if r.table is None]
    preface = (
        "One table per ablation space in `search_spaces/`; a row holds the records its sweep wrote (they carry the "
        "table and row ids). Records written before ablation ids existed carry none and appear in no ablation table."
    )
    if skipped:
        preface += "\n\nNot written (no records for any of their rows): " + "; ".join(skipped) + "."
    if written:
        _write_tables(target / "ablations", "Ablations", written, preface)
        pd.concat([t.numeric for t in written], ignore_index=True).to_csv(target / "ablations.csv", index=False)
        sections.append(
            Section(
                "Ablations",
                [Item("markdown", Path("ablations.md"), "ablations (Markdown)"),
                 Item("file", Path("ablations.csv"), "ablations.csv"),
                 Item("file", Path("ablations.tex"), "ablations.tex")],
            )
        )
    else:
        sections.append(
            Section("Ablations", [], "No ablation table: no record carries the ids of an ablation row. " + preface)
        )

    plot_dir = target / "plots"
    sections.append(_scoring_section(frame, target, split))
    sections.append(_per_depth_section(frame, target, plot_dir, split, figures))
    sections.append(_robustness_section(frame, target, plot_dir, figures))

    # accuracy vs cost
    cost_figures, pareto_tables = plots.accuracy_vs_cost(frame, plot_dir, split, draw=figures)
    cost_items: list[Item] = []
    for fig in cost_figures:
        cost_items.append(Item("image", fig.png.relative_to(target), fig.title))
        if fig.svg is not None:
            cost_items.append(Item("file", fig.svg.relative_to(target), fig.svg.name))
    if pareto_tables:
        _write_tables(target / "pareto", "Pareto fronts", pareto_tables)
        cost_items.append(Item("markdown", Path("pareto.md"), "Pareto members (pareto.md)"))
    no_cost = "" if cost_figures or pareto_tables else "No record has both accuracy and cost values."
    sections.append(Section("Accuracy vs cost", cost_items, NO_FIGURES if not figures else no_cost))

    # response curves
    curves = plots.response_curves(frame, plot_dir, split=split, select_on=select_on) if figures else []
    no_curves = "No key among " + ", ".join(plots.RESPONSE_KEYS) + " has ≥2 values in the ok records."
    sections.append(
        Section(
            "Response curves",
            [Item("image", f.png.relative_to(target), f"{f.title} ({'; '.join(f.notes)})") for f in curves],
            NO_FIGURES if not figures else "" if curves else no_curves,
        )
    )

    # gallery
    images, gallery_warnings = gallery_mod.build_gallery(
        frame, target / "gallery", gallery_per_category, gallery_images, split
    ) if figures else ([], [])
    sections.append(
        Section(
            "Heatmap gallery",
            [Item("image", i.path.relative_to(target), f"{i.category} {i.name} ({i.label})") for i in images],
            NO_FIGURES if not figures else "" if images else "No record has a gallery artifact.",
        )
    )

    # summary (last, so gallery problems are listed too)
    summary, _ = summary_markdown(frame, record_set, select_on, [str(d) for d in run_dirs], results)
    if gallery_warnings:
        summary += "\n## Gallery warnings\n\n" + "\n".join(f"- {w}" for w in gallery_warnings) + "\n"
    (target / "summary.md").write_text(summary)
    sections.insert(0, Section("Summary", [Item("markdown", Path("summary.md"), "summary.md")]))
    sections.append(Section("Data", [Item("file", Path("records.csv"), "records.csv (one row per record)")]))

    counts = agg.status_counts(frame)
    intro = [
        f"Built {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(frame)} records "
        f"({', '.join(f'{n} {s}' for s, n in counts.items())}) in " + ", ".join(f"`{d}`" for d in run_dirs) + ".",
        f"Reported split: {split}; configurations selected on: {select_on}.",
    ]
    if select_on == "test":
        intro.append("**Configurations were selected on the test split: the reported test numbers are optimistic.**")
    if record_set.unreadable:
        intro.append(f"**{len(record_set.unreadable)} record file(s) could not be read or failed the record schema**; "
                     "they are listed with the reason in the summary and contribute to no table.")
    if record_set.ignored:
        intro.append(f"{len({p for p, _ in record_set.ignored})} record(s) of a newer suite version were read in part; "
                     "the summary says what was ignored.")
    if redirected:
        intro.append(f"**Note:** `{out_dir}` already held a report, so this one was written to `{target}`.")
    index = write_index(target, "rcsuite report", "\n\n".join(intro), sections)
    log.info("report written to %s in %.1f s", target, time.time() - started)
    return index


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a report from stored rcsuite trial records.")
    parser.add_argument("run_dirs", nargs="+", help="run folders (searched recursively for record*.json)")
    parser.add_argument("--out", required=True, help="report folder (a -2, -3... sibling is used when it is not empty)")
    parser.add_argument("--select-on", default="val", choices=agg.SPLITS, help="split used to select configurations")
    parser.add_argument("--no-figures", action="store_true", help="tables only: no plots, no heatmap gallery")
    args = parser.parse_args(argv)
    index = build_report(args.run_dirs, args.out, select_on=args.select_on, figures=not args.no_figures)
    print(index)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
