"""suite.reporting.footer: the footer under every table (dataset, size, preset, trials, selection, scoring, code)."""

import pandas as pd

from suite import aggregate as agg
from suite.reporting import footer as F
from suite.reporting.fake_records import write_fake_runs


def test_footer_reports_dataset_size_preset_trials_selection_versions(fake_frame, tmp_path):
    footer = F.footer_text(fake_frame[fake_frame["dataset"] == "mvtec"])
    assert "MVTec AD" in footer and "32 px" in footer and "preset: tiny" in footer
    assert "1 failed" in footer and "1 stopped" in footer
    assert (
        "no record selected on the test split" in footer and "git 0123456789ab" in footer
        and "rcsuite 0.1.0" in footer
    )
    runs = write_fake_runs(tmp_path, test_selected=2)
    tested = agg.records_frame(agg.load_records(*runs.run_dirs))
    assert "TEST split used for selection in 2 of" in F.footer_text(tested)


def test_footer_names_the_scoring_of_rcae_and_convae_records():
    base = {"status": "ok", "dataset": "mvtec", "category": "bottle", "seed": 0}
    frame = pd.DataFrame(
        [{**base, "method": "rcae", "config.eval.anomaly_map": "fused", "config.eval.standardize": "none"}]
    )
    assert "scoring: anomaly_map=fused, standardize=none;" in F.footer_text(frame)
    legacy = frame.assign(**{"config.eval.anomaly_map": "crd", "config.eval.standardize": True})  # before none|pixel
    assert "scoring: anomaly_map=crd, standardize=pixel;" in F.footer_text(legacy)
    mixed = pd.concat([frame, frame, legacy, frame.assign(method="fae")], ignore_index=True)
    assert F.scoring_text(mixed) == ("scoring: anomaly_map=crd, standardize=pixel (1 records); "
                                     "anomaly_map=fused, standardize=none (2 records) for RcAE")
    assert F.scoring_text(frame.assign(method="hfr")) == "scoring: each method's own map (HFR-AE)"
    assert F.scoring_text(frame.drop(columns=["config.eval.standardize"])) == "scoring: not recorded"
