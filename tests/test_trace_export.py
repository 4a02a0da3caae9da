"""The Perfetto/Chrome trace: request flows from arrival through the batch that served
them to their end, class and deadline in the arguments, arrivals and drops as instants,
and the device named as it is."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from strait_sim import api
from strait_sim.cli.app import main
from strait_sim.engine.timeline import REQUESTS_PID, Timeline


@pytest.fixture(scope="module")
def overloaded(tmp_path_factory):
    """An overloaded run (drops happen) written through the CLI's --trace-out."""
    path = tmp_path_factory.mktemp("trace") / "t.json"
    assert main(["run", "--policy", "strait", "--load", "1.4", "--duration", "6", "--seed",
                 "3", "--trace-out", str(path), "--quiet"]) == 0
    result = api.simulate("strait", load=1.4, duration=6, seed=3)
    return json.loads(path.read_text())["traceEvents"], result.requests


def test_every_request_has_a_flow_through_its_batch(overloaded):
    events, requests = overloaded
    flows = defaultdict(dict)
    for e in events:
        if e["ph"] in ("s", "t", "f"):
            flows[e["id"]][e["ph"]] = e
    assert set(flows) == set(requests["id"].tolist())
    slices = defaultdict(list)  # (pid, tid) -> [(start, end, name)]
    for e in events:
        if e["ph"] == "X":
            slices[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    served = requests[requests["status"].isin(["on_time", "late"])]
    assert len(served) > 10
    for row in served.itertuples():
        f = flows[row.id]
        assert f["s"]["pid"] == REQUESTS_PID and f["f"]["pid"] == REQUESTS_PID
        assert f["s"]["ts"] >= row.arrival_s * 1e6 and f["f"]["ts"] <= row.finish_s * 1e6
        step = f["t"]  # inside the compute slice of a batch on the request's device and slot
        assert step["pid"] == row.gpu
        inside = [s for s in slices[(step["pid"], step["tid"])] if s[0] <= step["ts"] <= s[1]]
        assert inside and f"{row.model} x" in inside[0][2]
        assert row.start_s * 1e6 <= step["ts"] <= row.finish_s * 1e6
    for e in events:  # each flow point lies inside a slice of its own track (binding)
        if e["ph"] in ("s", "f") and e["pid"] == REQUESTS_PID:
            assert any(a <= e["ts"] <= b for a, b, _ in slices[(e["pid"], e["tid"])])


def test_arrivals_and_drops_are_instants_with_class_and_deadline(overloaded):
    events, requests = overloaded
    arrivals = [e for e in events if e["ph"] == "i" and e["cat"] == "arrival"]
    drops = [e for e in events if e["ph"] == "i" and e["cat"] == "drop"]
    assert len(arrivals) == len(requests)
    unserved = requests[requests["status"].isin(["dropped", "rejected", "failed"])]
    assert len(unserved) > 0 and len(drops) == len(unserved)
    by_id = requests.set_index("id")
    for e in arrivals + drops:
        a = e["args"]
        row = by_id.loc[a["id"]]
        assert a["class"] == row["priority"] and a["model"] == row["model"]
        assert a["deadline_s"] == pytest.approx(row["deadline_s"])
        assert a["deadline_ms"] == pytest.approx((row["deadline_s"] - row["arrival_s"]) * 1e3)
    for e in drops:
        assert e["ts"] == pytest.approx(by_id.loc[e["args"]["id"], "finish_s"] * 1e6)


def test_request_lanes_never_overlap(overloaded):
    events, _ = overloaded
    lanes = defaultdict(list)
    for e in events:
        if e["ph"] == "X" and e["pid"] == REQUESTS_PID and e["cat"].startswith("request"):
            lanes[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    for spans in lanes.values():
        spans.sort()
        for (_a, end), (start, _b) in zip(spans, spans[1:], strict=False):
            assert start >= end - 1e-6


def test_device_is_named_as_it_is(overloaded):
    events, _ = overloaded
    names = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    assert names[0] == "AMD EPYC (cpu), simulated"  # the default profile's device
    assert not any(n.startswith("GPU") for n in names.values())
    assert names[REQUESTS_PID] == "requests"


def test_add_keeps_its_signature_and_a_bare_timeline_still_exports():
    tl = Timeline()
    tl.add(0, "slot 0", "m x1", 0.0, 0.5, 7)
    trace = tl.to_chrome()
    assert [e for e in trace["traceEvents"] if e["ph"] == "X"][0]["args"] == {"batch": 7}


def test_write_trace_without_a_timeline_is_a_user_error(tmp_path):
    from strait_sim.errors import UserError

    result = api.simulate("fifo", "synthetic-tiny", rate=20, duration=1)
    with pytest.raises(UserError, match="timeline=True"):
        result.write_trace(tmp_path / "t.json")


def test_write_trace_replaces_a_timeline_but_never_a_users_file(tmp_path):
    from strait_sim.errors import UserError

    result = api.simulate("fifo", "synthetic-tiny", rate=20, duration=1, timeline=True)
    mine = tmp_path / "precious.txt"
    mine.write_text("my notes\n")
    with pytest.raises(UserError, match="not written by strait-sim"):
        result.write_trace(mine)
    assert mine.read_text() == "my notes\n"
    ours = result.write_trace(tmp_path / "t.json")
    first = ours.read_bytes()
    result.write_trace(ours)  # an earlier timeline: replaced (same run, same bytes)
    assert ours.read_bytes() == first
