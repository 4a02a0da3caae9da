"""Profile bundles: the reader accepts what the schema says and names what is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from strait_sim.errors import BundleError, UnknownNameError
from strait_sim.profile_bundle import load_bundle, read_bundle_dir
from strait_sim.profile_registry import bundled_profiles, resolve_profile


@pytest.fixture()
def bundle_copy(synthetic_bundle_path, tmp_path) -> Path:
    dest = tmp_path / "b"
    shutil.copytree(synthetic_bundle_path, dest)
    return dest


def _rewrite(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(fn(lines)) + "\n")


def test_synthetic_bundle_loads_and_is_marked_synthetic(synthetic_bundle):
    assert synthetic_bundle.meta["synthetic"] is True
    assert synthetic_bundle.name.startswith("synthetic")
    assert set(synthetic_bundle.model_names) == {"synth_small", "synth_medium", "synth_large"}
    assert synthetic_bundle.has("pairs") and synthetic_bundle.has("transfers")


def test_solo_ms_interpolates_between_measured_batches(synthetic_bundle):
    b2 = synthetic_bundle.solo_ms("synth_large", 2)
    b4 = synthetic_bundle.solo_ms("synth_large", 4)
    assert b2 < synthetic_bundle.solo_ms("synth_large", 3) < b4
    assert synthetic_bundle.solo_ms("synth_large", 16) > synthetic_bundle.solo_ms("synth_large", 8)


def test_registry_finds_by_name_and_path(synthetic_bundle_path):
    assert "synthetic-tiny" in {p.name for p in bundled_profiles()}
    assert load_bundle("synthetic-tiny").content_hash == \
        load_bundle(str(synthetic_bundle_path)).content_hash
    with pytest.raises(UnknownNameError, match="unknown profile 'nope'; valid: .*synthetic-tiny"):
        resolve_profile("nope")
    with pytest.raises(BundleError, match="not found"):
        load_bundle("./no/such/folder")


def test_missing_required_file(bundle_copy):
    (bundle_copy / "solo.csv").unlink()
    with pytest.raises(BundleError, match=r"b/solo.csv: required file is missing"):
        read_bundle_dir(bundle_copy)


def test_non_numeric_value_names_file_line_and_column(bundle_copy):
    _rewrite(bundle_copy / "solo.csv",
             lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",fast"] + ls[6:])
    with pytest.raises(BundleError) as err:
        read_bundle_dir(bundle_copy)
    assert str(err.value) == "b/solo.csv, line 6, column 'latency_ms': not a finite number: 'fast'"


def test_negative_latency_rejected(bundle_copy):
    _rewrite(bundle_copy / "pairs.csv",
             lambda ls: ls[:3] + [ls[3].replace(ls[3].split(",")[6], "-1", 1)] + ls[4:])
    with pytest.raises(BundleError, match=r"pairs.csv, line 4, column 'latency_ms': must be > 0"):
        read_bundle_dir(bundle_copy)


def test_missing_column(bundle_copy):
    _rewrite(bundle_copy / "transfers.csv",
             lambda ls: [",".join(x.split(",")[:-1]) for x in ls])
    with pytest.raises(BundleError, match=r"transfers.csv, line 1: missing column\(s\) time_ms"):
        read_bundle_dir(bundle_copy)


def test_unknown_model_in_table(bundle_copy):
    _rewrite(bundle_copy / "solo.csv",
             lambda ls: ls[:2] + [ls[2].replace("synth_", "ghost_", 1)] + ls[3:])
    with pytest.raises(BundleError, match=r"solo.csv, line 3, column 'model': model 'ghost_"):
        read_bundle_dir(bundle_copy)


def test_bad_schema_version_and_json(bundle_copy):
    meta = json.loads((bundle_copy / "profile.json").read_text())
    meta["schema_version"] = 99
    (bundle_copy / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="schema_version 99 is not supported"):
        read_bundle_dir(bundle_copy)
    (bundle_copy / "profile.json").write_text("{ nope")
    with pytest.raises(BundleError, match="profile.json, line 1: not valid JSON"):
        read_bundle_dir(bundle_copy)


def test_empty_file(bundle_copy):
    (bundle_copy / "models.csv").write_text("")
    with pytest.raises(BundleError, match="models.csv: file is empty"):
        read_bundle_dir(bundle_copy)


def test_overlap_longer_than_latency_rejected(bundle_copy):
    def corrupt(lines):
        cols = lines[1].split(",")
        cols[8] = str(float(cols[6]) * 3)
        return [lines[0], ",".join(cols)] + lines[2:]

    _rewrite(bundle_copy / "pairs.csv", corrupt)
    with pytest.raises(BundleError, match="line 2, column 'overlap_ms'"):
        read_bundle_dir(bundle_copy)


def test_a_time_above_an_hour_is_refused_as_a_unit_error(bundle_copy):
    """1e300 ms in solo.csv loaded and then overflowed numpy in the simulation (a warning,
    nonsense results); any batch time above an hour is a unit error, named at its line."""
    _rewrite(bundle_copy / "solo.csv",
             lambda ls: ls[:5] + [ls[5].rsplit(",", 1)[0] + ",1e300"] + ls[6:])
    with pytest.raises(BundleError) as err:
        read_bundle_dir(bundle_copy)
    assert str(err.value).startswith("b/solo.csv, line 6, column 'latency_ms': '1e300' is "
                                     "above one hour (3,600,000)")
