"""Streamed results (issue 15): the same requests.parquet bytes and the same summary as
the in-memory path, for the same seed; memory released as rows become final."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import strait_sim.metrics_stream as ms
from strait_sim.engine.records import CHUNK, RequestRecords
from strait_sim.engine.simulator import SimConfig
from strait_sim.experiment import run_simulation
from strait_sim.metrics import summarize
from strait_sim.policies.registry import make_policy
from strait_sim.requests import ON_TIME
from strait_sim.results import summary_text
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload


def _pair(bundle, policy, tmp_path, *, gpus=2, row_group=CHUNK, rate=900.0, seed=3):
    wl = BasicPoissonWorkload(bundle.model_names, rate=rate, duration_s=6.0,
                              hp_fraction=0.3, slo=4.0)
    cfg = SimConfig(gpus=gpus, slots=2, max_batch=8, seed=seed)
    mem = run_simulation(bundle, wl, make_policy(policy), cfg)
    streamed = run_simulation(bundle, wl, make_policy(policy), cfg,
                              out=tmp_path / "streamed", row_group=row_group)
    return mem, streamed


def _without_wall(summary: dict) -> str:
    s = dict(summary)
    s["engine"] = {k: v for k, v in s["engine"].items() if "wall" not in k}
    return summary_text(s)


# reef preempts, strait drops: every status and column path is exercised
@pytest.mark.parametrize("policy,gpus", [("fifo", 1), ("strait", 2), ("reef", 2)])
def test_streamed_file_has_the_in_memory_bytes(synthetic_bundle, tmp_path, policy, gpus):
    mem, streamed = _pair(synthetic_bundle, policy, tmp_path, gpus=gpus)
    mem.write(tmp_path / "mem")
    assert (tmp_path / "mem/requests.parquet").read_bytes() == \
        (tmp_path / "streamed/requests.parquet").read_bytes()
    assert _without_wall(mem.summary) == _without_wall(streamed.summary)
    assert json.loads((tmp_path / "streamed/summary.json").read_text())["requests"] == \
        len(mem.requests)
    pd.testing.assert_frame_equal(mem.requests, streamed.requests)


def test_many_row_groups_same_bytes_and_streamed_summary(synthetic_bundle, tmp_path):
    """Row groups of 256 rows on both sides: the watermark cuts the same groups as
    pyarrow does, and the summary streamed over them (not read whole) is bit-identical."""
    mem, streamed = _pair(synthetic_bundle, "reef", tmp_path, row_group=256, rate=1400.0)
    mem.requests.to_parquet(tmp_path / "mem.parquet", index=False, row_group_size=256)
    path = tmp_path / "streamed/requests.parquet"
    assert pq.ParquetFile(path).num_row_groups > 10
    assert (tmp_path / "mem.parquet").read_bytes() == path.read_bytes()
    span = streamed.summary["duration_s"]
    want = summarize(mem.requests, duration_s=span, busy_fraction=0.5)
    got = ms.summarize_file(path, duration_s=span, busy_fraction=0.5, in_memory_rows=0)
    assert "slo" not in got  # the SLO view is computed in memory only (metrics docstring)
    want.pop("slo")
    assert summary_text(got) == summary_text(want)


def test_pyarrow_cuts_row_groups_where_the_records_do(tmp_path):
    """The in-memory writer's default row group is the records' chunk (2^20 rows)."""
    table = pa.table({"x": np.zeros(CHUNK + 3, dtype=np.int8)})
    pq.write_table(table, tmp_path / "t.parquet")
    meta = pq.ParquetFile(tmp_path / "t.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [CHUNK, 3]


def test_empty_run_writes_the_same_empty_table(tmp_path):
    from strait_sim.results import RequestsParquetStream

    rec = RequestRecords()
    sink = RequestsParquetStream(tmp_path / "s.parquet")
    rec.stream(sink, ("a", "b"))
    rec.finish_stream()
    sink.close()
    RequestRecords().to_frame(("a", "b")).to_parquet(tmp_path / "m.parquet", index=False)
    assert (tmp_path / "s.parquet").read_bytes() == (tmp_path / "m.parquet").read_bytes()


class _Frames:
    def __init__(self) -> None:
        self.rows: list[int] = []

    def write(self, frame: pd.DataFrame) -> None:
        self.rows.append(len(frame))


def test_watermark_writes_only_final_rows_and_releases_chunks():
    rec = RequestRecords()
    sink = _Frames()
    rec.stream(sink, ("a",))
    rec.ensure(2 * CHUNK + 10)
    status, _ = rec.column("status", 0)
    status[:] = ON_TIME
    status2, _ = rec.column("status", CHUNK)
    status2[:5] = ON_TIME  # request CHUNK + 5 is still in flight
    assert rec.watermark() == CHUNK + 5
    rec.flush_final()
    assert sink.rows == [CHUNK] and rec.written == CHUNK
    released, _ = rec.column("finish_s", 0)
    assert released.strides == (0,) and not released.flags.writeable
    assert rec.get("status", 7) == ON_TIME  # an ended request still reads as ended
    with pytest.raises(ValueError):
        rec.set("finish_s", 7, 1.0)  # a late write to a written row fails loudly
    with pytest.raises(RuntimeError, match="never ended"):
        rec.finish_stream()
    status2[:] = ON_TIME
    rec.column("status", 2 * CHUNK)[0][:10] = ON_TIME
    rec.finish_stream()
    assert sink.rows == [CHUNK, CHUNK, 10]


@pytest.mark.parametrize("n", [1, 2, 7, 130, 5000, 70001])
def test_streamed_percentiles_and_means_are_numpys(monkeypatch, n):
    monkeypatch.setattr(ms, "COLLECT_LIMIT", 3)  # force the radix passes
    rng = np.random.default_rng(n)
    values = np.round(rng.exponential(5.0, n), 1)  # ties on purpose
    values[: n // 3] = -values[: n // 3]
    pieces = np.array_split(values, 4)
    ranks = {r for q in ms.PERCENTILES for r in ms.percentile_ranks(n, q)}
    sel = ms.OrderStatistics(n, ranks)
    while not sel.done():
        sel.begin_pass()
        for p in pieces:
            sel.feed(p)
        sel.end_pass()
    for q in ms.PERCENTILES:
        assert ms.percentile_from(n, q, sel.values) == float(np.percentile(values, q))
    total = ms.PairwiseSum(n, block=128)
    for p in pieces:
        total.add(p)
    assert total.total() == float(values.sum())
