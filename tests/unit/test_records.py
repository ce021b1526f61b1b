"""suite.records / suite.record_schema: one reader and writer for records, checked against the schema."""

import dataclasses
import json
import math

import numpy as np
import pytest

from suite import record_schema as S
from suite.records import RECORD_VERSION, RecordError, TrialRecord, load_record, read_record, write_record


def _record(**changes) -> TrialRecord:
    base = dict(config={"model": {"method": "m"}}, config_hash="h", dataset="mvtec", category="bottle", method="m",
                metrics={"test": {"i_auroc": 0.9, "p_auroc": 0.8, "loss": 3.5}},
                cost={"params": 10, "fused": True, "by_batch": {"1": 2.0}},
                stage_times={"stage1": 1.5}, seed=1)
    base.update(changes)
    return TrialRecord(**base)


def test_schema_fields_are_the_records_fields():
    assert set(S.FIELDS) == {f.name for f in dataclasses.fields(TrialRecord)}
    assert RECORD_VERSION == S.RECORD_VERSION == 6


def test_a_record_with_shift_fields_round_trips(tmp_path):
    data_shift = {"shifted": True, "shifted_statistics": ["brightness"], "n_train": 3, "n_test": 2, "rule": "r",
                  "statistics": {"brightness": {"shifted": True, "p_corrected": 0.001, "outside_share": 0.4}}}
    record = _record(shifts={"dark8": {"i_auroc": 0.5}}, info={"data_shift": data_shift,
                                                               "score_brightness_spearman": None, "other": [1]})
    write_record(record, tmp_path / "record.json")
    back = read_record(tmp_path / "record.json")
    assert back.shifts == {"dark8": {"i_auroc": 0.5}} and back.info == record.info


def test_a_record_round_trips(tmp_path):
    record = _record(metrics={"test": {"i_auroc": np.float32(0.5), "aupro": 1.0}}, started=1.0, finished=2.0)
    write_record(record, tmp_path / "record.json")
    back = read_record(tmp_path / "record.json")
    assert back.metrics["test"] == {"i_auroc": 0.5, "aupro": 1.0} and back.busy_s == 1.0
    assert load_record(tmp_path / "record.json").ignored == []


@pytest.mark.parametrize("changes, needle", [
    ({"metrics": {"test": {"i_auroc": 7.5}}}, "metrics.test.i_auroc: 7.5 is outside [0, 1]"),
    ({"metrics": {"test": {"p_auroc": -3.0}}}, "metrics.test.p_auroc: -3 is outside [0, 1]"),
    ({"metrics": {"test": {"i_auroc": math.nan}}}, "metrics.test.i_auroc: nan is not finite"),
    ({"metrics": {"test": {"loss": math.inf}}}, "metrics.test.loss: inf is not finite"),
    ({"metrics": {"val": [0.9]}}, "metrics.val: expected a mapping, got list"),
    ({"scorings": {"auto|pixel": {"test": {"aupro": 1.5}}}}, "scorings.auto|pixel.test.aupro"),
    ({"diagnostics": {"test": {"recon": {"1": {"i_auroc": "x"}}}}}, "expected a number, got str"),
    ({"cost": {"params": -1}}, "cost.params: -1 is outside"),
    ({"cost": {"by_batch": {"8": math.nan}}}, "cost.by_batch.8: nan is not finite"),
    ({"stage_times": {"stage1": math.nan}}, "stage_times.stage1: nan is not finite"),
    ({"status": "exploded"}, "status: 'exploded' is not one of ok, failed, stopped"),
    ({"selection": "train"}, "selection: 'train'"),
    ({"seed": True}, "seed: expected an integer, got bool"),
    ({"dataset": None}, "dataset: expected text, got null"),
    ({"history": {"a": 1}}, "history: expected a list"),
    ({"shifts": {"dark8": {"i_auroc": 1.2}}}, "shifts.dark8.i_auroc: 1.2 is outside [0, 1]"),
    ({"shifts": {"dark8": 0.5}}, "shifts.dark8: expected a mapping"),
    ({"info": {"data_shift": {"shifted": "yes", "statistics": {}}}}, "info.data_shift.shifted: expected true/false"),
    ({"info": {"data_shift": {"statistics": {}}}}, "info.data_shift.shifted: missing"),
    ({"info": {"data_shift": {"shifted": False, "statistics": {"brightness": {"p_corrected": math.nan}}}}},
     "info.data_shift.statistics.brightness.p_corrected: nan is not finite"),
    ({"info": {"score_brightness_spearman": 1.5}}, "info.score_brightness_spearman: 1.5 is outside [-1, 1]"),
])
def test_the_writer_refuses_bad_values_where_they_are_made(tmp_path, changes, needle):
    with pytest.raises(RecordError) as info:
        write_record(_record(**changes), tmp_path / "record.json")
    assert needle in str(info.value) and "record.json" in str(info.value)
    assert not (tmp_path / "record.json").exists()


def _write(tmp_path, data, name="record.json"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_the_reader_refuses_hostile_files_before_parsing(tmp_path):
    good = _record().to_dict()
    cases = {
        b"[" * 200_000 + b"]" * 200_000: "nested 200000 levels deep",
        b"": "empty",
        bytes(range(256)): "not UTF-8",
        json.dumps(good).encode()[:60]: "not valid JSON",
        b"[1, 2]": "expected a JSON object, got list",
        json.dumps({**good, "config": None}).encode(): "config: expected a mapping",
        json.dumps({k: v for k, v in good.items() if k != "category"}).encode(): "category: missing",
        json.dumps({**good, "extra": 1}).encode(): "unknown fields ['extra'] in a version-6 record",
    }
    for i, (raw, needle) in enumerate(cases.items()):
        path = _write(tmp_path, raw, f"record_{i}.json")
        with pytest.raises(RecordError, match=None) as info:
            load_record(path)
        assert needle in str(info.value) and str(path) in str(info.value), (needle, str(info.value))


def test_depth_is_measured_without_parsing_and_ignores_strings():
    assert S.json_depth(b'{"a": [1, {"b": "[[[[[[["}]}') == 3
    assert S.json_depth(b'{"a": "\\"[[[[", "b": [[]]}') == 3  # an escaped quote does not end the string
    assert S.json_depth(b"1") == 0


def test_size_limit_is_checked_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr("suite.records.MAX_RECORD_BYTES", 100)
    path = _write(tmp_path, _record().to_dict())
    with pytest.raises(RecordError, match="over the 100-byte limit"):
        load_record(path)


def test_a_newer_version_loads_what_it_can_and_names_what_it_ignored(tmp_path):
    data = {**_record().to_dict(), "record_version": RECORD_VERSION + 1, "uncertainty": {"x": 1}}
    loaded = load_record(_write(tmp_path, data))
    assert loaded.record.metrics["test"]["i_auroc"] == 0.9
    newer = RECORD_VERSION + 1
    assert loaded.ignored == [f"field 'uncertainty' (record version {newer}, this code reads {RECORD_VERSION})"]
    bad = {**data, "metrics": {"test": {"i_auroc": 2.0}}}  # known fields are still checked
    with pytest.raises(RecordError, match="outside"):
        load_record(_write(tmp_path, bad, "record_bad.json"))


def test_older_records_still_load(tmp_path):
    data = _record().to_dict()
    old_fields = ("shifts", "diagnostics", "scorings", "ablation", "started", "finished", "device")
    for version, dropped in ((5, ("shifts",)), (4, ("shifts",)), (1, old_fields)):
        old = {k: v for k, v in data.items() if k not in dropped} | {"record_version": version}
        assert load_record(_write(tmp_path, old, f"record_v{version}.json")).record.record_version == version


def test_an_older_record_can_be_rewritten(tmp_path):
    """Resumed sweeps rewrite records of older code (marking them stopped or their selection split)."""
    path = _write(tmp_path, _record(record_version=4).to_dict())
    record = read_record(path)
    record.status = "stopped"
    write_record(record, path)
    assert read_record(path).status == "stopped" and read_record(path).record_version == 4
