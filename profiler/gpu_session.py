"""All the GPU work in one command, each step on its own clock (scripts/gpu_session.sh).

A GPU is lent to this project rarely and briefly: one command of at most 8 minutes that
leaves at most 8 files of at most 16 MiB. So the session is a fixed list of steps, each
a subprocess with its own budget in seconds. A step that runs past its budget is
interrupted (SIGINT first, so the profiler writes what it measured; SIGKILL after a
grace period), recorded as ``cut`` and the next step starts: no step blocks the rest. A
global deadline shortens the last steps' budgets when earlier ones ran long, and skips a
step that would get less than ``MIN_STEP_S``.

Steps (``--mode gpu``; ``--mode cpu-dry-run`` runs the same steps on the CPU backend with
tiny models and small settings, which the test suite does so that the script cannot rot):

1. device: name, driver, clocks, copy engines, MIG/MPS state, zoo vs torchvision
   (:mod:`.device_report`), and ``nvidia-smi``'s view;
2. solo: the paper's models (and three more) at batch 1, 2, 4, 8, fp16, CUDA graphs;
3. pairs: a seeded sample of the pair grid, offsets 0, 1/4, 1/2, 3/4 in both orders;
4. transfers: 4 KiB to 256 MiB, 1/2/4 concurrent copies, opposite direction idle/busy;
5. kernels: one traced forward of a few models at batch 1 and 8;
6. validate: ``strait-sim validate --live`` for fifo and strait at a moderate and an
   intense load on the bundle just measured.

Then it packs (:func:`pack`): the bundle (a tarball), the reports (a tarball), the log,
``steps.json`` and ``session-summary.md``: five files under ``--out``.

This process never touches CUDA itself: a CUDA context held here would make the live
busy check refuse the validation runs ("other processes compute on it").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

MIN_STEP_S = 5.0
GRACE_S = 15.0  # after SIGINT, before SIGKILL
PACK_RESERVE_S = 10.0
MAX_FILE_BYTES = 15 * 1024 * 1024  # the device tool brings back files of at most 16 MiB


@dataclass
class Settings:
    """Everything that differs between the GPU session and its CPU dry run."""

    device_args: list[str]
    models: list[str]
    batches: str
    precision: str
    profile_extra: list[str]
    solo: list[str]
    pairs: list[str]
    transfers: list[str]
    kernel_models: list[str]
    kernel_batches: str
    kernels: list[str]
    validate_models: list[str]
    loads: dict[str, float]
    validate_extra: list[str]
    budgets: dict[str, float]
    total_s: float


def gpu_settings(gpu: int) -> Settings:
    from strait_sim.profiler.zoo import DEFAULT_MODELS

    return Settings(
        device_args=["--gpu", str(gpu)], models=list(DEFAULT_MODELS), batches="1,2,4,8",
        precision="fp16", profile_extra=[],
        solo=["--reps", "30", "--warmup", "5"],
        pairs=["--pair-reps", "3", "--offsets", "0,0.25,0.5,0.75", "--budget-s", "55"],
        transfers=["--transfer-reps", "5", "--max-transfer-mib", "256"],
        kernel_models=["resnet50", "vit_b16", "roberta_base"], kernel_batches="1,8",
        kernels=["--kernel-rows", "200"],
        validate_models=["resnet50", "vit_b16", "roberta_base"],
        loads={"moderate": 0.5, "intense": 0.9},
        validate_extra=["--max-batch", "4", "--duration", "10"],
        # measured on no GPU yet: sized from the CPU runs and the H200's advertised speed;
        # the steps.json of the first session says what each really took
        budgets={"device": 40, "solo": 90, "pairs": 95, "transfers": 40, "kernels": 35,
                 "validate": 30},
        total_s=450)


def cpu_dry_run_settings() -> Settings:
    return Settings(
        device_args=["--cpu"], models=["tiny_cnn", "tiny_mlp", "tiny_bert"], batches="1,2",
        # --force: like validate below, the dry run checks the plumbing on a shared machine
        # (the profile command refuses a busy CPU since 2026-12-01; the dry run failed then)
        precision="fp32", profile_extra=["--threads-per-stream", "1", "--force"],
        solo=["--reps", "3", "--warmup", "1"],
        pairs=["--pair-reps", "1", "--offsets", "0,0.5", "--budget-s", "2"],
        transfers=["--transfer-reps", "1", "--max-transfer-mib", "1"],
        kernel_models=["tiny_cnn"], kernel_batches="1", kernels=["--kernel-rows", "20"],
        validate_models=["tiny_mlp", "tiny_cnn"], loads={"moderate": 0.3, "intense": 0.6},
        # the development machine is shared and busy: a dry run checks the plumbing, so
        # it starts even so (--force); a GPU session never forces
        validate_extra=["--max-batch", "2", "--duration", "1.5", "--force"],
        budgets={"device": 60, "solo": 60, "pairs": 60, "transfers": 60, "kernels": 60,
                 "validate": 60},
        total_s=900)


@dataclass
class Step:
    name: str
    budget_s: float
    argv: list[str]
    status: str = "pending"  # ok | failed | cut | skipped
    rc: int | None = None
    seconds: float = 0.0
    note: str = ""
    outputs: list[str] = field(default_factory=list)


def slug(device_name: str, precision: str) -> str:
    """'NVIDIA H200' + fp16 -> 'h200-fp16' (the bundle's folder name)."""
    name = re.sub(r"^nvidia\s+", "", device_name.strip().lower())
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "device"
    return f"{name}-{precision}"


class Session:
    def __init__(self, settings: Settings, out: Path, work: Path, mode: str) -> None:
        self.s = settings
        self.out = out
        self.work = work
        self.mode = mode
        self.log_path = work / "session.log"
        self.steps: list[Step] = []
        self.t0 = time.monotonic()
        self.started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.bundle: Path | None = None
        self.py = [sys.executable]
        self.sim = [sys.executable, "-m", "strait_sim.cli.app"]

    # -- running -------------------------------------------------------------------------
    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:7.1f}s] {text}"
        print(line, flush=True)
        with self.log_path.open("a") as f:
            f.write(line + "\n")

    def remaining(self) -> float:
        return self.s.total_s - (time.monotonic() - self.t0) - PACK_RESERVE_S

    def run(self, step: Step) -> Step:
        self.steps.append(step)
        budget = min(step.budget_s, self.remaining())
        if budget < MIN_STEP_S:
            step.status, step.note = "skipped", f"only {max(budget, 0):.0f} s left of the session"
            self.log(f"== {step.name}: skipped ({step.note})")
            return step
        if budget < step.budget_s:
            step.note = f"budget shortened to {budget:.0f} s by the session deadline"
        self.log(f"== {step.name} (budget {budget:.0f} s): {shlex.join(step.argv)}")
        start = self.log_path.stat().st_size
        t = time.monotonic()
        with self.log_path.open("a") as logf:
            proc = subprocess.Popen(step.argv, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True, env={**os.environ,
                                                                 "PYTHONUNBUFFERED": "1"})
            try:
                step.rc = proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                step.status = "cut"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
                try:
                    step.rc = proc.wait(timeout=GRACE_S)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    step.rc = proc.wait()
        step.seconds = round(time.monotonic() - t, 2)
        if step.status != "cut":
            step.status = "ok" if step.rc == 0 else "failed"
        if step.status == "failed":  # say why where steps.json and the summary show it
            why = _last_lines(self.log_path, start)
            step.note = "; ".join(x for x in (step.note, why) if x)
        self.log(f"== {step.name}: {step.status} (exit {step.rc}) after {step.seconds} s"
                 + (f"; {step.note}" if step.note else ""))
        return step

    # -- the steps -----------------------------------------------------------------------
    def device_step(self) -> None:
        report = self.work / "reports" / "device.json"
        argv = [*self.py, "-m", "strait_sim.profiler.device_report", *self.s.device_args,
                "--models", ",".join(self.s.models), "--out", str(report)]
        step = self.run(Step("device", self.s.budgets["device"], argv))
        if self.mode == "gpu":
            smi = self.work / "reports" / "nvidia-smi.txt"
            query = ("name,driver_version,pstate,clocks.sm,clocks.mem,clocks.max.sm,"
                     "clocks.max.mem,power.draw,power.limit,temperature.gpu,mig.mode.current,"
                     "compute_mode,persistence_mode,pcie.link.gen.current,"
                     "pcie.link.width.current,utilization.gpu,memory.used,memory.total")
            with smi.open("w") as f:
                for args in (["--query-gpu=" + query, "--format=csv"], ["-q"],
                             ["--query-compute-apps=pid,process_name,used_memory",
                              "--format=csv"]):
                    try:
                        got = subprocess.run(["nvidia-smi", *args], capture_output=True,
                                             text=True, timeout=20)
                        f.write(f"$ nvidia-smi {' '.join(args)}\n{got.stdout}{got.stderr}\n")
                    except (OSError, subprocess.TimeoutExpired) as exc:
                        f.write(f"$ nvidia-smi {' '.join(args)}\nfailed: {exc}\n")
            step.outputs.append(str(smi))
        name = None
        if report.is_file():
            step.outputs.append(str(report))
            with contextlib.suppress(Exception):
                name = json.loads(report.read_text())["device"]["name"]
        folder = slug(name or ("gpu" if self.mode == "gpu" else "cpu"), self.s.precision)
        if self.mode != "gpu":
            folder = folder.replace(f"-{self.s.precision}", f"-dryrun-{self.s.precision}")
        self.bundle = self.work / folder
        self.log(f"bundle folder: {self.bundle}")

    def profile_argv(self, only: str, models: list[str], batches: str,
                     extra: list[str]) -> list[str]:
        assert self.bundle is not None
        return [*self.sim, "profile", *self.s.device_args, "--out", str(self.bundle),
                "--models", ",".join(models), "--batches", batches, "--precision",
                self.s.precision, "--only", only, *self.s.profile_extra, *extra,
                "--note", f"Measured by scripts/gpu_session.sh ({self.mode}); step '{only}'."]

    def measure_steps(self) -> None:
        s = self.s
        self.run(Step("solo", s.budgets["solo"],
                      self.profile_argv("solo", s.models, s.batches, s.solo)))
        self.run(Step("pairs", s.budgets["pairs"],
                      self.profile_argv("pairs", s.models, s.batches, s.pairs)))
        self.run(Step("transfers", s.budgets["transfers"],
                      self.profile_argv("transfers", s.models, s.batches, s.transfers)))
        self.run(Step("kernels", s.budgets["kernels"],
                      self.profile_argv("kernels", s.kernel_models, s.kernel_batches,
                                        s.kernels)))

    def validate_steps(self) -> None:
        assert self.bundle is not None
        device = ["--gpu", self.s.device_args[1]] if self.mode == "gpu" else ["--cpu"]
        for level, load in self.s.loads.items():
            for policy in ("fifo", "strait"):
                folder = self.work / "reports" / f"validate-{policy}-{level}"
                argv = [*self.sim, "validate", "--live", *device, "--profile",
                        str(self.bundle), "--policy", policy, "--models",
                        ",".join(self.s.validate_models), "--load", str(load), "--seed", "0",
                        "--out", str(folder), *self.s.validate_extra]
                step = self.run(Step(f"validate-{policy}-{level}", self.s.budgets["validate"],
                                     argv))
                if folder.exists():
                    step.outputs.append(str(folder))

    # -- packing -------------------------------------------------------------------------
    def summary(self) -> str:
        lines = [f"# GPU session ({self.mode})", "",
                 f"Started {self.started}; bundle folder "
                 f"`{self.bundle.name if self.bundle else '-'}`.", "",
                 "| step | status | seconds | budget | exit | note |",
                 "| --- | --- | ---: | ---: | ---: | --- |"]
        for st in self.steps:
            lines.append(f"| {st.name} | {st.status} | {st.seconds:.1f} | {st.budget_s:.0f} | "
                         f"{'' if st.rc is None else st.rc} | {st.note} |")
        lines += ["", f"Total {time.monotonic() - self.t0:.0f} s of a {self.s.total_s:.0f} s "
                  "session budget.", ""]
        lines += self._device_lines() + self._link_lines() + self._validation_lines()
        return "\n".join(lines) + "\n"

    def _device_lines(self) -> list[str]:
        report = self.work / "reports" / "device.json"
        if not report.is_file():
            return ["Device: no report (the device step failed or was cut).", ""]
        doc = json.loads(report.read_text())
        d = doc.get("device", {})
        cross = doc.get("zoo_vs_torchvision", {})
        out = [f"Device: {d.get('name')} ({doc.get('kind')}); driver {d.get('driver')}; "
               f"copy engines {d.get('copy_engines', {}).get('async_engine_count', '-')}; "
               f"MIG {d.get('mig_mode', '-')}; MPS active {d.get('mps', {}).get('active', '-')}."]
        if cross.get("available"):
            bad = [n for n, r in cross.get("models", {}).items()
                   if not r.get("params_equal") or r.get("error")]
            out.append(f"Zoo vs torchvision {cross.get('torchvision')}: "
                       f"{'all equal' if not bad else 'differ: ' + ', '.join(bad)}.")
        else:
            out.append(f"Zoo vs torchvision: not checked ({cross.get('why', '-')}).")
        return [*out, ""]

    def _link_lines(self) -> list[str]:
        if self.bundle is None or not (self.bundle / "transfers.csv").is_file():
            return ["Copy engines: no transfers measured.", ""]
        import pandas as pd

        from strait_sim.profiler.transfer_sharing import link_sharing

        found = link_sharing(pd.read_csv(self.bundle / "transfers.csv"),
                             min_bytes=4 << 20 if self.mode == "gpu" else 64 << 10)
        (self.work / "reports" / "link-sharing.json").write_text(json.dumps(found, indent=2))
        out = ["Copies (transfers.csv; device-timed; see docs/profiling.md for the reading):"]
        for direction, r in found.items():
            conc = "; ".join(f"{n} at once: min/max {c['min_over_max']}, aggregate "
                             f"{c['aggregate']}x ({c['verdict']})"
                             for n, c in r["concurrency"].items())
            out.append(f"- {direction}: {r.get('sharing')}; {conc}; opposite direction "
                       f"busy: x{r.get('opposite_factor')} bandwidth")
        return [*out, ""]

    def _validation_lines(self) -> list[str]:
        out = ["| validation | class | p50 live | p50 sim | p99 live | p99 sim |",
               "| --- | --- | ---: | ---: | ---: | ---: |"]
        for st in self.steps:
            if not st.name.startswith("validate-"):
                continue
            rep = self.work / "reports" / st.name / "report.json"
            if not rep.is_file():
                out.append(f"| {st.name} | ({st.status}) | | | | |")
                continue
            doc = json.loads(rep.read_text())
            for cls, c in doc.get("classes", {}).items():
                lat = c.get("latency", {})

                def ms(q: str, side: str, lat: dict = lat) -> str:
                    v = lat.get(q, {}).get(side)
                    return "-" if v is None else f"{v:.2f}"

                out.append(f"| {st.name} | {cls} | {ms('p50', 'live_ms')} | "
                           f"{ms('p50', 'sim_ms')} | {ms('p99', 'live_ms')} | "
                           f"{ms('p99', 'sim_ms')} |")
        return [*out, ""]

    def pack(self) -> list[Path]:
        """At most 8 files under ``out``, each under 15 MiB (big members dropped, named)."""
        self.out.mkdir(parents=True, exist_ok=True)
        files = []
        if self.bundle is not None and self.bundle.is_dir():
            files.append(_tar(self.out / f"bundle-{self.bundle.name}.tar.gz", self.bundle,
                              self.bundle.name))
        reports = self.work / "reports"
        if reports.is_dir():
            files.append(_tar(self.out / "reports.tar.gz", reports, "reports"))
        summary = self.summary()
        (self.out / "session-summary.md").write_text(summary)
        files.append(self.out / "session-summary.md")
        steps = {"mode": self.mode, "total_budget_s": self.s.total_s,
                 "seconds": round(time.monotonic() - self.t0, 2),
                 "bundle": self.bundle.name if self.bundle else None,
                 "steps": [asdict(st) for st in self.steps]}
        (self.out / "steps.json").write_text(json.dumps(steps, indent=2) + "\n")
        files.append(self.out / "steps.json")
        log = self.log_path.read_bytes() if self.log_path.is_file() else b""
        if len(log) > MAX_FILE_BYTES:  # keep the head and the tail
            half = MAX_FILE_BYTES // 2
            log = log[:half] + b"\n[... log cut to fit 15 MiB ...]\n" + log[-half:]
        (self.out / "session.log").write_bytes(log)
        files.append(self.out / "session.log")
        print(summary, flush=True)
        return files


def _last_lines(log: Path, start: int, n: int = 3, width: int = 300) -> str:
    """The last ``n`` non-empty lines a step wrote to the log (from byte ``start``)."""
    try:
        with log.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # no "|": the note goes into a markdown table cell of session-summary.md
    return " / ".join(ln[:width].replace("|", "/") for ln in lines[-n:])


def _tar(path: Path, folder: Path, arcname: str) -> Path:
    """Tar ``folder``; drop the largest members until the archive fits, and say which."""
    members = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    dropped: list[str] = []
    while True:
        with tarfile.open(path, "w:gz") as tar:
            for p in members:
                tar.add(p, arcname=f"{arcname}/{p.relative_to(folder)}")
            if dropped:
                note = ("dropped to fit the 16 MiB limit: " + ", ".join(dropped) + "\n").encode()
                info = tarfile.TarInfo(f"{arcname}/DROPPED.txt")
                info.size = len(note)
                tar.addfile(info, io.BytesIO(note))
        if path.stat().st_size <= MAX_FILE_BYTES or not members:
            return path
        dropped.append(str(members.pop().relative_to(folder)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m strait_sim.profiler.gpu_session",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("gpu", "cpu-dry-run"), default="gpu")
    ap.add_argument("--gpu", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="folder for the packed files")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder")
    ap.add_argument("--budget", action="append", default=[], metavar="STEP=SECONDS",
                    help="override one step's budget (validate: each of its four runs)")
    ap.add_argument("--total-s", type=float, default=None, help="session budget in seconds")
    a = ap.parse_args(argv)
    settings = gpu_settings(a.gpu) if a.mode == "gpu" else cpu_dry_run_settings()
    for item in a.budget:
        key, _, value = item.partition("=")
        if key not in settings.budgets:
            print(f"gpu_session: --budget: unknown step {key!r}; steps: "
                  f"{', '.join(settings.budgets)}", file=sys.stderr)
            return 2
        try:
            settings.budgets[key] = float(value)
        except ValueError:
            print(f"gpu_session: --budget {item}: seconds must be a number", file=sys.stderr)
            return 2
    if a.total_s is not None:
        settings.total_s = a.total_s
    if a.out.exists() and any(a.out.iterdir()):
        print(f"gpu_session: {a.out} is not empty; give an empty or new folder", file=sys.stderr)
        return 2
    (a.work / "reports").mkdir(parents=True, exist_ok=True)
    session = Session(settings, a.out, a.work, a.mode)
    session.log(f"strait-sim GPU session, mode {a.mode}, python {sys.executable}, "
                f"budget {settings.total_s:.0f} s; strait_sim from "
                f"{Path(__import__('strait_sim').__file__).parent}")
    session.device_step()
    session.measure_steps()
    session.validate_steps()
    files = session.pack()
    session.log(f"packed {len(files)} files into {a.out}: "
                f"{', '.join(p.name for p in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
