"""A property-based campaign over the CLI (issue 17): whatever the flags, bundle or trace,
the command ends cleanly.

Hypothesis generates command lines (flags with good, odd and bad values), damaged profile
bundles and damaged trace files, and runs the CLI in-process (``main(argv)``: what the
console script runs, without the 1-2 s of interpreter start per example) in a fresh
sandbox folder. Every example must:

* exit with 0 or 2 (1 only where documented: a sweep with failed points),
* print at most 3 lines on stderr and no traceback,
* finish within :data:`EXAMPLE_TIMEOUT_S` (nothing hangs),
* leave nothing new outside the output paths it was given,
* leave every file that existed before untouched (size and modification time).

The work limit is lowered for the campaign (``STRAIT_SIM_MAX_REQUESTS``) so that an
accepted run stays small. The number of examples per test is :data:`EXAMPLES` (set
``STRAIT_SIM_CAMPAIGN_EXAMPLES`` to run a bigger campaign by hand); each test also stops
generating work after :data:`BUDGET_S` seconds so that the suite stays bounded on a slow
machine. Examples are derandomised: the same campaign every run.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from strait_sim.cli.app import main  # noqa: E402

EXAMPLES = int(os.environ.get("STRAIT_SIM_CAMPAIGN_EXAMPLES", "0")) or None
BUDGET_S = float(os.environ.get("STRAIT_SIM_CAMPAIGN_BUDGET_S", "15"))
EXAMPLE_TIMEOUT_S = 20
MAX_STDERR_LINES = 3
def campaign(examples: int):  # noqa: ANN201
    return settings(max_examples=EXAMPLES or examples, deadline=None, derandomize=True,
                    database=None, print_blob=True, suppress_health_check=list(HealthCheck))

# -- values: good, odd and bad, as a user might type them ----------------------------------
TEXT_VALUES = ["", " ", "abc", "-", "--", "1,2", "nan", "inf", "-inf", "1e309", "0x10",
               " 3", "1_000", "resnet50", "synth_small", "high=3,low=10", "high=0", "1-8",
               "8-1", "1=3,8=1", "0=1", "0:5", "5:0", ":", "a=b=c", "=", ",", "ünïcode",
               "true", "false", "null", "{}", "[1]", "1.5", "-0", "3.", ".5e-3"]
NUMBERS = st.one_of(
    st.integers(-5, 5), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(1e-12, 1e12),
)
VALUE = st.one_of(NUMBERS.map(lambda x: repr(x) if isinstance(x, float) else str(x)),
                  st.sampled_from(TEXT_VALUES))

WORKLOAD_FLAGS = ["--workload", "--rate", "--load", "--capacity-batch", "--duration",
                  "--max-requests", "--models", "--mix", "--hp-fraction", "--hp-models",
                  "--slo", "--deadline-ms", "--items", "--cv", "--burst-ratio",
                  "--burst-fraction", "--burst-s", "--diurnal-amplitude", "--diurnal-period",
                  "--diurnal-phase", "--clients", "--think-ms", "--think-dist",
                  "--trace-map", "--token-buckets", "--window", "--time-scale", "--rate-scale"]
SYSTEM_FLAGS = ["--seed", "--gpus", "--slots", "--max-batch"]
WORKLOAD_KINDS = ["poisson", "gamma", "mmpp", "diurnal", "closed", "trace", "azure-conv",
                  "nosuch"]
POLICIES = ["fifo", "edf", "priority", "strait", "triton", "clockwork", "reef", "orion",
            "gpulet", "nosuch"]
PARAMS = ["hp_guard=7", "hp_guard=false", "safety=1.2", "safety=-1", "safety=x", "nope=1",
          "drop_early=true", "max_batch=0", "predictor=nosuch", "predictor=rls", "=1",
          "window=3", "order=deadline", "order=7", "x.y=1", "hp_slots=0"]
BOOLEAN_FLAGS = ["--no-interference", "--no-pcie", "--overwrite", "--allow-large"]


@st.composite
def flag_values(draw, flags: list[str]) -> list[str]:
    args: list[str] = []
    for flag in draw(st.lists(st.sampled_from(flags), max_size=4)):
        if flag == "--workload":
            value = draw(st.sampled_from(WORKLOAD_KINDS))
        elif flag == "--think-dist":
            value = draw(st.sampled_from(["exp", "const", "nosuch", ""]))
        elif flag == "--trace-map":
            value = draw(st.sampled_from(["column", "weighted", "round-robin", "tokens", "x"]))
        else:
            value = draw(VALUE)
        args += [flag, value]
    return args


# -- the sandbox -------------------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            out[str(p.relative_to(root))] = (st_.st_size if p.is_file() else -1,
                                            st_.st_mtime_ns if p.is_file() else 0)
    return out


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):  # noqa: ANN001, ARG001
    raise _Hang(f"still running after {EXAMPLE_TIMEOUT_S} s")


@pytest.fixture(scope="module", autouse=True)
def small_work_limit():
    """Accepted runs stay small: at most 3,000 requests each."""
    old = os.environ.get("STRAIT_SIM_MAX_REQUESTS")
    os.environ["STRAIT_SIM_MAX_REQUESTS"] = "3000"
    yield
    if old is None:
        del os.environ["STRAIT_SIM_MAX_REQUESTS"]
    else:
        os.environ["STRAIT_SIM_MAX_REQUESTS"] = old


@pytest.fixture(scope="module")
def template(tmp_path_factory, synthetic_bundle_path):
    """What each sandbox starts from: a user's folder and file, a trace, a bundle, and an
    earlier run result (made once; each example gets a copy)."""
    root = tmp_path_factory.mktemp("campaign-template")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("my notes\n")
    (root / "mine.txt").write_text("keep me\n")
    (root / "trace.csv").write_text("arrival_s,model,priority\n0.0,synth_small,high\n"
                                    "0.1,synth_medium,low\n0.25,synth_small,low\n")
    shutil.copytree(synthetic_bundle_path, root / "bundle")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", "--profile", "synthetic-tiny", "--rate", "20", "--duration",
                     "0.5", "-q", "--out", str(root / "earlier")]) == 0
    return root


class Campaign:
    """Counts what ran, and stops generating work once the test's time budget is spent."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.ran = 0
        self.exits: dict[int, int] = {}

    def over_budget(self) -> bool:
        return time.monotonic() - self.start > BUDGET_S

    def check(self, template: Path, argv_for, prepare=None, allowed_exits=(0, 2)) -> None:  # noqa: ANN001
        """Run one example in a fresh copy of the template and check every property."""
        if self.over_budget():
            return
        with tempfile.TemporaryDirectory(prefix="campaign-") as tmp:
            box = Path(tmp) / "box"
            shutil.copytree(template, box, symlinks=True)
            if prepare is not None:
                prepare(box)
            argv, outputs = argv_for(box)
            before = _snapshot(box)
            err, code = io.StringIO(), None
            cwd = os.getcwd()
            old = signal.signal(signal.SIGALRM, _on_alarm)
            signal.alarm(EXAMPLE_TIMEOUT_S)
            try:
                os.chdir(box)
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(err):
                    code = main(argv)
            except _Hang as exc:
                pytest.fail(f"hangs: {argv}: {exc}")
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, old)
                os.chdir(cwd)
            self.ran += 1
            self.exits[code] = self.exits.get(code, 0) + 1
            text = err.getvalue()
            lines = [ln for ln in text.splitlines() if ln.strip()]
            assert code in allowed_exits, f"exit {code}: {argv}\n{text}"
            assert "Traceback" not in text, f"traceback: {argv}\n{text}"
            assert len(lines) <= MAX_STDERR_LINES, f"{len(lines)} lines: {argv}\n{text}"
            after = _snapshot(box)
            allowed = [str(Path(o)) for o in outputs]
            for path, stat in before.items():
                if any(path == a or path.startswith(a + os.sep) for a in allowed) \
                        or any(a == "." for a in allowed):
                    continue  # an output given on the command line may be replaced
                assert after.get(path) == stat, f"touched {path}: {argv}\n{text}"
            for path in after.keys() - before.keys():
                assert any(path == a or path.startswith(a + os.sep) for a in allowed) \
                    or "." in allowed, f"left {path} behind: {argv}\n{text}"


OUT_TARGETS = ["new", "mine", "mine.txt", "earlier", ".", "new/deeper", "trace.csv"]


@campaign(120)
@given(data=st.data())
def test_campaign_run_flags(template, campaign_run, data):
    """`strait-sim run` with random workload, system and policy flags and output targets."""
    workload = data.draw(flag_values(WORKLOAD_FLAGS), label="workload flags")
    system = data.draw(flag_values(SYSTEM_FLAGS), label="system flags")
    policy = data.draw(st.sampled_from(POLICIES), label="policy")
    params = data.draw(st.lists(st.sampled_from(PARAMS), max_size=2), label="params")
    flags = data.draw(st.lists(st.sampled_from(BOOLEAN_FLAGS), max_size=2, unique=True))
    out = data.draw(st.one_of(st.none(), st.sampled_from(OUT_TARGETS)), label="--out")
    trace_out = data.draw(st.one_of(st.none(), st.sampled_from(["t.json", "mine.txt"])))

    def argv_for(box: Path):  # noqa: ANN202
        argv = ["run", "--profile", "synthetic-tiny", "--rate", "40", "--duration", "1",
                "-q", "--policy", policy, *workload, *system, *flags]
        for p in params:
            argv += ["--param", p]
        if "--workload" in workload and "trace" in workload:
            argv += ["--trace", "trace.csv"]
        outputs = []
        if out is not None:
            argv += ["--out", out]
            outputs.append(out)
        if trace_out is not None:
            argv += ["--trace-out", trace_out]
            outputs.append(trace_out)
        return argv, outputs

    campaign_run.check(template, argv_for)


TRACE_LINES = ["arrival_s,model,priority", "arrival_s", "0.0,synth_small,high",
               "0.1,synth_medium,low",
               "0.2,synth_small", "-1,synth_small,high", "abc,synth_small,high", "0.05,ghost,low",
               "0.3,synth_small,medium", "", "nan,synth_small,low", "1e308,synth_small,low",
               "0.4,synth_small,low,extra", "arrival_s,arrival_s", "TIMESTAMP,ContextTokens",
               "2023-11-16 18:15:46.6805900,12", "2023-11-16 18:15:46,x", "\ufeffarrival_s",
               "0.5,\"synth_small\",\"low\"", "inf,synth_small,high", "0.6;synth_small;low",
               "deadline_ms,arrival_s", "items", "0.7,synth_small,low"]


@st.composite
def trace_bytes(draw) -> bytes:
    kind = draw(st.sampled_from(["valid", "valid", "text", "text", "binary", "long", "crlf"]))
    if kind == "valid":  # a good trace, perhaps with one damaged row
        times = sorted(draw(st.lists(st.floats(0, 5), min_size=1, max_size=20)))
        rows = [f"{t!r},{draw(st.sampled_from(['synth_small', 'synth_medium']))},"
                f"{draw(st.sampled_from(['high', 'low']))}" for t in times]
        if draw(st.booleans()):
            rows.insert(draw(st.integers(0, len(rows))), draw(st.sampled_from(TRACE_LINES)))
        return ("arrival_s,model,priority\n" + "\n".join(rows) + "\n").encode()
    lines = draw(st.lists(st.sampled_from(TRACE_LINES), max_size=12))
    body = "\n".join(lines).encode()
    if kind == "binary":
        body += draw(st.binary(min_size=1, max_size=64))
    elif kind == "long":
        body += b"9" * draw(st.integers(1, 3 << 20))
    elif kind == "crlf":
        body = body.replace(b"\n", b"\r\n")
    return body


@campaign(80)
@given(body=trace_bytes(), suffix=st.sampled_from([".csv", ".csv.gz", ".parquet", ".txt"]),
       command=st.sampled_from(["show", "run", "generate-over"]))
def test_campaign_trace_files(template, campaign_trace, body, suffix, command):
    """`workload show` and `run --trace` on damaged trace files (CSV, gzip, Parquet)."""
    name = "t" + suffix

    def prepare(box: Path) -> None:
        data = body
        if suffix == ".csv.gz":
            import gzip

            data = gzip.compress(body, mtime=0)
        (box / name).write_bytes(data)

    def argv_for(box: Path):  # noqa: ANN202
        if command == "show":
            return ["workload", "show", name], []
        if command == "run":
            return ["run", "--profile", "synthetic-tiny", "--trace", name, "-q",
                    "--policy", "fifo"], []
        return ["workload", "generate", "--profile", "synthetic-tiny", "--rate", "20",
                "--duration", "1", "--out", name], [name]

    campaign_trace.check(template, argv_for, prepare)


BUNDLE_DAMAGE = ["drop-row", "bad-number", "negative", "empty-cell", "true-false",
                 "drop-column", "extra-column", "truncate", "binary", "empty-file",
                 "delete-file", "bad-json", "json-field", "duplicate-row", "unknown-model"]
BUNDLE_FILES = ["models.csv", "solo.csv", "pairs.csv", "transfers.csv", "profile.json"]


def _damage(path: Path, how: str, rnd) -> None:  # noqa: ANN001
    if how == "delete-file":
        path.unlink()
        return
    if how == "empty-file":
        path.write_bytes(b"")
        return
    if how == "binary":
        path.write_bytes(path.read_bytes()[:50] + b"\x00\xff\xfe" * 10)
        return
    try:
        text = path.read_text()
    except UnicodeDecodeError:  # already damaged into binary by an earlier step
        return
    if not text.strip():
        return
    if path.suffix == ".json":
        if how in ("bad-json", "truncate"):
            path.write_text(text[: len(text) // 2])
        else:
            import json

            try:
                meta = json.loads(text)
            except ValueError:
                return
            if not isinstance(meta, dict) or not meta:
                return
            key = rnd.choice(sorted(meta))
            meta[key] = rnd.choice([None, 7, "x", [], {"a": 1}, True])
            path.write_text(json.dumps(meta))
        return
    lines = text.splitlines()
    header, rows = lines[0].split(","), lines[1:]
    if not rows:
        return
    i = rnd.randrange(len(rows))
    cells = rows[i].split(",")
    j = rnd.randrange(len(cells))
    if how == "drop-row":
        del rows[i]
    elif how == "bad-number":
        cells[j] = rnd.choice(["abc", "nan", "inf", "1e999", "--1"])
    elif how == "negative":
        cells[j] = "-3"
    elif how == "empty-cell":
        cells[j] = ""
    elif how == "true-false":
        cells[j] = rnd.choice(["true", "FALSE", "yes"])
    elif how == "drop-column":
        header = header[:j] + header[j + 1:]
        rows = [",".join(r.split(",")[:j] + r.split(",")[j + 1:]) for r in rows]
    elif how == "extra-column":
        header = [*header, "extra"]
    elif how == "truncate":
        rows = rows[: i]
    elif how == "duplicate-row":
        rows.append(rows[i])
    elif how == "unknown-model" and "model" in header:
        cells[header.index("model")] = "ghost"
    if how in ("bad-number", "negative", "empty-cell", "true-false", "unknown-model"):
        rows[i] = ",".join(cells)
    path.write_text("\n".join([",".join(header), *rows]) + "\n")


@campaign(60)
@given(damage=st.lists(st.tuples(st.sampled_from(BUNDLE_FILES),
                                 st.sampled_from(BUNDLE_DAMAGE)), min_size=1, max_size=2),
       seed=st.integers(0, 1000),
       command=st.sampled_from(["run", "show", "compare"]))
def test_campaign_bundle_files(template, campaign_bundle, damage, seed, command):
    """`run`, `profile show` and `compare` on damaged profile bundles."""
    import random

    def prepare(box: Path) -> None:
        rnd = random.Random(seed)
        for fname, how in damage:
            if (box / "bundle" / fname).exists():
                _damage(box / "bundle" / fname, how, rnd)

    def argv_for(box: Path):  # noqa: ANN202
        if command == "run":
            return ["run", "--profile", "bundle", "--rate", "40", "--duration", "1", "-q",
                    "--policy", "strait"], []
        if command == "show":
            return ["profile", "show", "bundle", "--no-plots"], []
        return ["compare", "--profile", "bundle", "--policies", "fifo,priority", "--seeds",
                "1", "--rate", "40", "--duration", "1", "-q", "--out", "cmp"], ["cmp"]

    campaign_bundle.check(template, argv_for, prepare)


def _campaign_fixture(name: str):  # noqa: ANN202
    @pytest.fixture(scope="module", name=name)
    def fixture():  # noqa: ANN202
        campaign = Campaign()
        yield campaign
        print(f"\n{name}: {campaign.ran} example(s) run, exit codes {campaign.exits}")
    return fixture


campaign_run = _campaign_fixture("campaign_run")
campaign_trace = _campaign_fixture("campaign_trace")
campaign_bundle = _campaign_fixture("campaign_bundle")
