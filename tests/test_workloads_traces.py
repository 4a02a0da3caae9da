"""Trace files: the Azure readers, the strait-sim format, round trips, replay options."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strait_sim.cli.workload_options import workload_from_options
from strait_sim.errors import UserError
from strait_sim.requests import HIGH, LOW
from strait_sim.workloads.spec import workload_from_description
from strait_sim.workloads.trace import packaged_trace_path
from strait_sim.workloads.tracefile import TraceReader, read_description, write_trace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
CONV_ROWS, CODE_ROWS = 19366, 8819


def _stream(wl, profile, seed=0):
    chunks = list(wl.chunks(profile, seed))
    out = {name: np.concatenate([getattr(c, name) for c in chunks])
           for name in ("arrival_s", "model", "priority", "deadline_s", "items")}
    out["model_name"] = np.asarray(chunks[0].models, dtype=object)[out["model"]]
    return out


def _azure_offsets(csv_path) -> np.ndarray:
    ts = pd.to_datetime(pd.read_csv(csv_path)["TIMESTAMP"]).to_numpy("datetime64[ns]")
    ns = ts.astype(np.int64)
    return (ns - ns[0]) / 1e9


# -- the Azure traces ------------------------------------------------------------------------


@pytest.mark.parametrize("kind,rows", [("azure-conv", CONV_ROWS), ("azure-code", CODE_ROWS)])
def test_shipped_azure_traces_parse(synthetic_bundle, kind, rows):
    path = packaged_trace_path(kind)
    assert path.is_file() and path.stat().st_size < 1_000_000
    reader = TraceReader(path)
    assert reader.format == "azure" and reader.has_tokens
    wl = workload_from_options({"workload": kind}, synthetic_bundle)
    s = _stream(wl, synthetic_bundle)
    assert len(s["arrival_s"]) == rows == wl.expected_count()
    assert s["arrival_s"][0] == 0.0 and np.all(np.diff(s["arrival_s"]) >= 0)
    assert 3400 < s["arrival_s"][-1] < 3600  # about an hour
    assert np.array_equal(s["arrival_s"], _azure_offsets(path))


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared traces folder not present")
@pytest.mark.parametrize("name,kind", [("azure-llm-2023-conv.csv", "azure-conv"),
                                       ("azure-llm-2023-code.csv", "azure-code")])
def test_azure_reader_reads_the_published_files_as_they_are(synthetic_bundle, name, kind):
    src = SHARED / name
    shipped = packaged_trace_path(kind)
    assert gzip.decompress(shipped.read_bytes()) == src.read_bytes()  # shipped unchanged
    wl = workload_from_options({"trace": str(src)}, synthetic_bundle)
    assert wl.kind == "trace"
    s = _stream(wl, synthetic_bundle)
    assert np.array_equal(s["arrival_s"], _azure_offsets(src))
    assert wl.describe()["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()


def test_azure_conv_window_scale_and_rate(synthetic_bundle):
    base = {"workload": "azure-conv"}
    full = _stream(workload_from_options(base, synthetic_bundle), synthetic_bundle)["arrival_s"]
    win = workload_from_options({**base, "window": "600:1200"}, synthetic_bundle)
    w = _stream(win, synthetic_bundle)["arrival_s"]
    inside = full[(full >= 600) & (full < 1200)]
    assert np.allclose(w, inside - 600) and w.min() >= 0 and w.max() < 600
    fast = workload_from_options({**base, "window": "600:1200", "time_scale": 0.25},
                                 synthetic_bundle)
    assert np.allclose(_stream(fast, synthetic_bundle)["arrival_s"], (inside - 600) * 0.25)
    at = workload_from_options({**base, "window": "600:1200", "rate": 40.0}, synthetic_bundle)
    a = _stream(at, synthetic_bundle)["arrival_s"]
    assert abs(len(a) / (600 * at.time_scale) - 40.0) < 1e-9
    cut = workload_from_options({**base, "duration": 100.0}, synthetic_bundle)
    assert _stream(cut, synthetic_bundle)["arrival_s"].max() < 100.0


@pytest.mark.parametrize("scale", [0.3, 2.5])
def test_rate_scale_keeps_the_shape(synthetic_bundle, scale):
    wl = workload_from_options({"workload": "azure-conv", "rate_scale": scale},
                               synthetic_bundle)
    s = _stream(wl, synthetic_bundle)["arrival_s"]
    assert abs(len(s) / (CONV_ROWS * scale) - 1) < 0.03  # s.e. < 1%
    assert np.all(np.diff(s) >= 0)
    full = _stream(workload_from_options({"workload": "azure-conv"}, synthetic_bundle),
                   synthetic_bundle)["arrival_s"]
    bins = np.linspace(0, full[-1] + 1e-9, 11)
    ratio = np.histogram(s, bins)[0] / np.histogram(full, bins)[0]
    assert np.all(np.abs(ratio / scale - 1) < 0.15)  # same rate curve, scaled


def test_load_on_a_trace(synthetic_bundle):
    from strait_sim.workloads.load import offered_load

    wl = workload_from_options({"workload": "azure-conv", "load": 0.7, "trace_map": "tokens"},
                               synthetic_bundle, gpus=2)
    s = list(wl.chunks(synthetic_bundle, 0))
    span = wl.describe()["rows"] and (s[-1].arrival_s[-1] - 0.0)
    got = offered_load(synthetic_bundle, s, 2, span)
    assert abs(got - 0.7) / 0.7 < 0.01


def test_token_and_round_robin_mappings(synthetic_bundle):
    rr = workload_from_options({"workload": "azure-code", "trace_map": "round-robin"},
                               synthetic_bundle)
    m = _stream(rr, synthetic_bundle)["model"]
    assert np.array_equal(m, np.arange(len(m)) % 3)
    tok = workload_from_options({"workload": "azure-conv", "trace_map": "tokens"},
                                synthetic_bundle)
    shares = np.bincount(_stream(tok, synthetic_bundle)["model"], minlength=3) / CONV_ROWS
    assert np.all(np.abs(shares - 1 / 3) < 0.05)  # equal-count quantile buckets
    explicit = workload_from_options({"workload": "azure-conv", "trace_map": "tokens",
                                      "token_buckets": "500,2000"}, synthetic_bundle)
    tokens = pd.read_csv(packaged_trace_path("azure-conv"))["ContextTokens"].to_numpy()
    want = np.searchsorted([500, 2000], tokens, side="right")
    assert np.array_equal(_stream(explicit, synthetic_bundle)["model"], want)


# -- the strait-sim format -------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_generated_trace_reads_back_identical(synthetic_bundle, tmp_path, suffix):
    wl = workload_from_options({"workload": "gamma", "cv": 2.5, "rate": 3000.0,
                                "duration": 30.0, "items": "1-8", "slo": "9",
                                "deadline_ms": "high=15"}, synthetic_bundle)
    out = tmp_path / f"t{suffix}"
    n = write_trace(out, wl.chunks(synthetic_bundle, 5), description=wl.describe())
    a = _stream(wl, synthetic_bundle, 5)
    assert n == len(a["arrival_s"]) > 65536  # several chunks
    back = workload_from_options({"trace": str(out)}, synthetic_bundle)
    assert back.mapping == "column"
    b = _stream(back, synthetic_bundle, 123)  # seed must not matter: every column given
    for k in ("arrival_s", "priority", "deadline_s", "items", "model_name"):
        assert np.array_equal(a[k], b[k]), k
    if suffix == ".parquet":
        assert read_description(out)["kind"] == "gamma"


def test_written_traces_are_byte_reproducible(synthetic_bundle, tmp_path):
    wl = workload_from_options({"rate": 100.0, "duration": 5.0}, synthetic_bundle)
    for name in ("a.csv.gz", "b.csv.gz"):
        write_trace(tmp_path / name, wl.chunks(synthetic_bundle, 1))
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()


def test_hand_written_trace_gets_missing_columns_from_rules(synthetic_bundle, tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("arrival_s, model ,priority\n0.0,synth_small,high\n0.5,synth_large,LOW\n\n"
                 "1.25,synth_small,hp\n")
    wl = workload_from_options({"trace": str(f), "slo": "4"}, synthetic_bundle)
    s = _stream(wl, synthetic_bundle)
    assert s["arrival_s"].tolist() == [0.0, 0.5, 1.25]
    assert s["model_name"].tolist() == ["synth_small", "synth_large", "synth_small"]
    assert s["priority"].tolist() == [HIGH, LOW, HIGH]
    assert s["items"].tolist() == [1, 1, 1]
    solo = synthetic_bundle.solo_ms("synth_large", 1) / 1e3
    assert s["deadline_s"][1] == 0.5 + 4 * solo
    only_times = tmp_path / "times.csv"
    only_times.write_text("arrival_s\n0\n1\n2\n3\n")
    wl2 = workload_from_options({"trace": str(only_times), "models": "synth_medium",
                                 "hp_fraction": 1.0, "deadline_ms": "30", "items": "2"},
                                synthetic_bundle)
    s2 = _stream(wl2, synthetic_bundle)
    assert set(s2["model_name"]) == {"synth_medium"} and np.all(s2["priority"] == HIGH)
    assert np.allclose(s2["deadline_s"] - s2["arrival_s"], 0.030)
    assert np.all(s2["items"] == 2)


def test_trace_description_round_trip_and_change_detection(synthetic_bundle, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_s,model\n0.1,synth_small\n0.2,synth_medium\n0.9,synth_small\n")
    wl = workload_from_options({"trace": str(f), "rate_scale": 3.0, "hp_fraction": 0.5},
                               synthetic_bundle)
    desc = wl.describe()
    again = workload_from_description(desc)
    assert again.describe() == desc
    a, b = _stream(wl, synthetic_bundle, 9), _stream(again, synthetic_bundle, 9)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    f.write_text("arrival_s,model\n0.1,synth_small\n")
    with pytest.raises(UserError, match="changed since"):
        workload_from_description(desc)


# -- bad trace input ---------------------------------------------------------------------------


BAD = [
    ("unsorted.csv", "arrival_s,model\n0.5,synth_small\n0.2,synth_small\n",
     "unsorted.csv, line 3, column 'arrival_s': arrival times are not sorted"),
    ("negative.csv", "arrival_s\n-1\n2\n", "negative.csv, line 2, column 'arrival_s': "
     "arrival time must be >= 0"),
    ("nocol.csv", "time,model\n1,synth_small\n", "nocol.csv, line 1: missing column "
     "'arrival_s'"),
    ("unknown.csv", "arrival_s,model\n0,synth_small\n1,resnet9000\n",
     "unknown.csv, line 3, column 'model': unknown model 'resnet9000'"),
    ("nonnum.csv", "arrival_s,model\n0,synth_small\nabc,synth_small\n",
     "nonnum.csv, line 3, column 'arrival_s': not a number: 'abc'"),
    ("items.csv", "arrival_s,items\n0,1\n1,2.5\n", "items.csv, line 3, column 'items': not a "
     "whole number"),
    ("prio.csv", "arrival_s,priority\n0,urgent\n", "prio.csv, line 2, column 'priority': "
     "priority must be 'high' or 'low'"),
    ("empty.csv", "", "empty.csv: file is empty"),
    ("blanks.csv", "\n\n", "blanks.csv: file is empty"),
    ("late.csv", "\n\narrival_s,model\n0,synth_small\n", "late.csv, line 1: blank; the "
     "header (the column names) must be the first line"),
    ("header.csv", "arrival_s,model\n", "header.csv: holds no requests"),
    ("extra.csv", "arrival_s,prority\n0,high\n", "extra.csv, line 1: unknown column "
     "'prority'"),
    ("both.csv", "arrival_s,deadline_ms,deadline_s\n0,1,1\n", "both.csv, line 1: give "
     "deadline_ms"),
    # pandas renamed the second one arrival_s.1 and that was reported as unknown
    ("dup.csv", "arrival_s,arrival_s\n0,0\n", "dup.csv, line 1: duplicated column "
     "'arrival_s'"),
    ("dupmodel.csv", "arrival_s,model,model\n0,synth_small,synth_small\n",
     "dupmodel.csv, line 1: duplicated column 'model'"),
    ("dupazure.csv", "TIMESTAMP,TIMESTAMP\n2023-11-16 18:15:46.68,2023-11-16 18:15:46.68\n",
     "dupazure.csv, line 1: duplicated column 'TIMESTAMP'"),
    ("dl.csv", "arrival_s,deadline_s\n1,2\n3,2.5\n", "dl.csv, line 3, column 'deadline_s': "
     "absolute deadline must be after arrival_s"),
    ("blank.csv", "arrival_s,model\n0,synth_small\n1,\n", "blank.csv, line 3, column "
     "'model': empty value"),
    ("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n"
     "yesterday,1,2\n", "azure.csv, line 3, column 'TIMESTAMP': not a timestamp"),
    ("azure2.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,2\n"
     "2023-11-16 18:15:45.00,1,2\n", "azure2.csv, line 3, column 'TIMESTAMP': arrival "
     "times are not sorted"),
]


@pytest.mark.parametrize("name,text,message", BAD, ids=[b[0] for b in BAD])
def test_bad_traces_name_file_and_line(synthetic_bundle, tmp_path, name, text, message):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(UserError) as err:
        wl = workload_from_options({"trace": str(f)}, synthetic_bundle)
        list(wl.chunks(synthetic_bundle, 0))
    msg = str(err.value)
    assert message in msg and "\n" not in msg and msg.startswith(str(f))


def test_bad_parquet_row_is_named(synthetic_bundle, tmp_path):
    f = tmp_path / "t.parquet"
    pd.DataFrame({"arrival_s": [0.0, 2.0, 1.0], "model": ["synth_small"] * 3}).to_parquet(f)
    with pytest.raises(UserError, match=r"t.parquet, row 3, column 'arrival_s': arrival times"):
        workload_from_options({"trace": str(f)}, synthetic_bundle)
    import pyarrow as pa
    import pyarrow.parquet as pq

    dup = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[0.0], [0.0]], names=["arrival_s", "arrival_s"]), dup)
    with pytest.raises(UserError, match="dup.parquet, line 1: duplicated column 'arrival_s'"):
        workload_from_options({"trace": str(dup)}, synthetic_bundle)
    g = tmp_path / "junk.parquet"
    g.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="junk.parquet: not a readable Parquet file"):
        workload_from_options({"trace": str(g)}, synthetic_bundle)


def test_errors_past_the_first_block_have_the_right_line(synthetic_bundle, tmp_path):
    f = tmp_path / "long.csv"
    lines = [f"{i * 0.001!r}" for i in range(100_000)]
    lines[80_000] = "oops"
    f.write_text("arrival_s\n" + "\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"long.csv, line 80002, column 'arrival_s': not a "
                                        r"number: 'oops'"):
        workload_from_options({"trace": str(f)}, synthetic_bundle)


def test_copies_keep_relative_deadlines_and_load_counts_trace_columns(synthetic_bundle,
                                                                      tmp_path):
    from strait_sim.workloads.load import offered_load

    rng = np.random.default_rng(0)
    n = 3000
    t = np.sort(rng.uniform(0, 100, n))
    f = tmp_path / "t.csv"
    pd.DataFrame({"arrival_s": t, "model": rng.choice(["synth_small", "synth_large"], n),
                  "items": rng.integers(1, 6, n), "deadline_s": t + 0.05}).to_csv(f, index=False)
    wl = workload_from_options({"trace": str(f), "rate_scale": 2.5}, synthetic_bundle)
    s = _stream(wl, synthetic_bundle)
    assert np.allclose(s["deadline_s"] - s["arrival_s"], 0.05)
    assert abs(len(s["arrival_s"]) / (2.5 * n) - 1) < 0.03
    at = workload_from_options({"trace": str(f), "load": 0.6}, synthetic_bundle, gpus=2)
    got = offered_load(synthetic_bundle, at.chunks(synthetic_bundle, 0), 2,
                       (t[-1] - t[0]) * at.time_scale)  # the trace's own span: first to last
    assert abs(got - 0.6) < 1e-9  # every model and item count is in the file: exact


def test_rate_scale_across_read_blocks(synthetic_bundle, monkeypatch):
    from strait_sim.workloads.arrivals import BLOCK
    from strait_sim.workloads.trace import TraceWorkload

    original = TraceWorkload.reader
    monkeypatch.setattr(TraceWorkload, "reader",
                        lambda self: TraceReader(original(self).path, block_rows=997))
    wl = workload_from_options({"workload": "azure-conv", "rate_scale": 3.5}, synthetic_bundle)
    chunks = list(wl.chunks(synthetic_bundle, 0))
    t = np.concatenate([c.arrival_s for c in chunks])
    assert all(len(c) <= BLOCK for c in chunks)
    assert np.all(np.diff(t) >= 0)
    assert abs(len(t) / (3.5 * CONV_ROWS) - 1) < 0.02
    orig = _azure_offsets(packaged_trace_path("azure-conv"))
    # Each original arrival is kept at its own time, with its 2 or 3 extra copies placed
    # before the next original arrival (also across read blocks).
    assert np.all(np.isin(orig, t))
    per_gap = np.searchsorted(t, orig[1:]) - np.searchsorted(t, orig[:-1])
    assert per_gap.min() >= 3 and per_gap.max() <= 4


@pytest.mark.parametrize("options", [
    {"workload": "azure-conv", "rate_scale": 3.5},
    {"workload": "azure-conv", "rate_scale": 2.0, "duration": 1500.0},
    {"workload": "azure-code", "rate_scale": 1.7, "max_requests": 9000},
])
def test_rate_scale_expands_in_pieces_with_the_same_chunks(synthetic_bundle, monkeypatch,
                                                            options):
    """Copies are made a few rows at a time (memory bounded at any --rate-scale), with
    the chunks, and every value in them, of the expansion of whole blocks at once."""
    import strait_sim.workloads.trace as trace

    def chunks(expand_rows):
        monkeypatch.setattr(trace, "EXPAND_ROWS", expand_rows)
        wl = workload_from_options(dict(options), synthetic_bundle)
        pieces = []
        original = trace.TraceWorkload._rate_scaled

        def counted(self, blocks, rng):
            for piece in original(self, blocks, rng):
                pieces.append(len(piece[0]))
                yield piece

        monkeypatch.setattr(trace.TraceWorkload, "_rate_scaled", counted)
        out = list(wl.chunks(synthetic_bundle, 5))
        monkeypatch.setattr(trace.TraceWorkload, "_rate_scaled", original)
        return out, pieces

    whole, whole_pieces = chunks(1 << 40)
    small, small_pieces = chunks(50)
    assert len(whole_pieces) <= 2 and len(small_pieces) > 100
    assert max(small_pieces) <= 50
    assert [len(c) for c in whole] == [len(c) for c in small]
    for a, b in zip(whole, small, strict=True):
        for name in ("arrival_s", "model", "priority", "deadline_s", "items"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
