"""``strait-sim predict``: list the interference predictors and measure their accuracy.

``predict evaluate`` runs the protocol of :mod:`strait_sim.predictors.evaluate` on one
profile bundle and writes, atomically, a folder of CSV tables, PNG figures and a
``summary.json`` that records the exact command, bundle hash and seed.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer

from strait_sim.cli.output_options import overwrite_option
from strait_sim.errors import UserError

predict_app = typer.Typer(help="Interference and transfer predictors: list, fit, evaluate.",
                          no_args_is_help=True)

MARKER = "summary.json"


def register(app: typer.Typer) -> None:
    app.add_typer(predict_app, name="predict")


@predict_app.command("list")
def list_predictors() -> None:
    """List the registered predictors with their parameters."""
    from rich.console import Console
    from rich.table import Table

    from strait_sim.predictors.registry import (
        DESCRIPTIONS,
        predictor_class,
        predictor_names,
        predictor_params,
    )

    table = Table(title="Interference predictors")
    for col in ("name", "online", "what it is", "parameters (defaults)"):
        table.add_column(col)
    for name in predictor_names():
        params = ", ".join(f"{k}={v!r}" for k, v in predictor_params(name).items())
        table.add_row(name, "yes" if predictor_class(name).online else "no",
                      DESCRIPTIONS.get(name, ""), params or "-")
    Console().print(table)


def _parse_params(items: list[str] | None) -> dict:
    """``--param key=value`` pairs; values are numbers where they parse as numbers."""
    out: dict = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param '{item}': expected key=value, e.g. forgetting=0.95")
        try:
            value: object = int(raw) if raw.strip().lstrip("-").isdigit() else float(raw)
        except ValueError:
            value = raw
        out[key.strip()] = value
    return out


@predict_app.command("fit")
def fit_cmd(
    predictor: str = typer.Argument(..., help="Predictor name (see 'predict list')."),
    profile: str = typer.Option(None, "--profile", help="Bundled profile name or bundle "
                                "folder (default: the default profile)."),
    param: list[str] = typer.Option(None, "--param", help="Parameter key=value (repeat)."),
) -> None:
    """Fit a predictor on the predictors' split of a bundle's co-location samples (odd
    repetitions; the simulator's truth model uses the even ones), cache it and show it."""
    from rich.console import Console

    from strait_sim.predictors.cache import cache_dir
    from strait_sim.predictors.registry import make_predictor
    from strait_sim.profile_bundle import load_bundle

    bundle = load_bundle(profile)
    p = make_predictor(predictor, bundle, **_parse_params(param))
    console = Console()
    console.print(f"{predictor} fitted on {bundle.name} ({bundle.device_name}); "
                  f"cache: {cache_dir()}")
    used = getattr(p, "samples_used", "unknown")
    if used == "in-sample":
        console.print("  samples: in-sample (pairs.csv has one repetition, so the truth model "
                      "and the predictor share every sample; simulated accuracy is flattered)")
    elif used == "out-of-sample":
        console.print("  samples: out-of-sample (odd repetitions of pairs.csv; the truth model "
                      "uses the even ones)")
    names = getattr(p, "feature_names", ())
    coef = getattr(p, "coef", None) or getattr(p, "w", None)
    if names and coef:
        for n, c in zip(names, coef, strict=True):
            console.print(f"  {n:>18} = {c:+.5g}")
    if bundle.has("transfers"):
        from strait_sim.predictors.transfer import TransferPredictor

        fit = TransferPredictor.from_profile(bundle).describe()
        for r in fit.itertuples(index=False):
            console.print(f"  copy {r.direction}: fixed {r.fixed_ms:.4g} ms, "
                          f"bandwidth {r.bandwidth_gb_per_s:.4g} GB/s ({r.samples} samples)")


def _parse_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--predictors: give at least one predictor name (comma-separated)")
    from strait_sim.predictors.registry import predictor_class

    for n in names:
        predictor_class(n)
    if len(set(names)) != len(names):
        raise UserError(f"--predictors: a name is listed twice in '{text}'")
    return names


@predict_app.command("evaluate")
def evaluate_cmd(
    profile: str = typer.Option(None, "--profile", help="Bundled profile name or bundle "
                                "folder (default: the default profile)."),
    out: Path = typer.Option(..., "--out", help="Output folder (written atomically)."),
    predictors: str = typer.Option(None, "--predictors",
                                   help="Comma-separated predictor names (default: all)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the splits and test order."),
    cache: bool = typer.Option(True, "--cache/--no-cache",
                               help="Reuse fitted predictors cached on disk."),
    overwrite: bool = overwrite_option(),
) -> None:
    """Accuracy of each predictor per scenario (random, higher load, unseen pairs,
    chronological), copy-time model, noise floor: CSV, Markdown and PNG in --out."""
    from strait_sim.atomic import atomic_dir
    from strait_sim.output_folder import check_output_folder
    from strait_sim.predictors.evaluate import evaluate, markdown_tables
    from strait_sim.predictors.params import SEED_MAX
    from strait_sim.profile_bundle import load_bundle

    names = _parse_names(predictors)
    if not 0 <= seed <= SEED_MAX:  # gbt hands it to scikit-learn, which takes 32 bits
        raise UserError(f"--seed must be in 0..{SEED_MAX} (a 32-bit seed, as numpy and "
                        f"scikit-learn take), got {seed}")
    check_output_folder(out, "predict-evaluate", overwrite=overwrite)
    bundle = load_bundle(profile)
    result = evaluate(bundle, names, seed, cache=cache)
    title = bundle.name
    with atomic_dir(out, "predict-evaluate") as tmp:
        from strait_sim.predictors.plots import (
            plot_accuracy,
            plot_by_overlap,
            plot_learning_curves,
        )

        result.accuracy.to_csv(tmp / "accuracy.csv", index=False, float_format="%.4g")
        result.scenarios.to_csv(tmp / "scenarios.csv", index=False)
        result.noise.to_csv(tmp / "noise_floor.csv", index=False, float_format="%.4g")
        (tmp / "table.md").write_text(markdown_tables(result))
        result.curves.to_csv(tmp / "learning_curve.csv", index=False, float_format="%.4g")
        result.by_overlap.to_csv(tmp / "error_by_overlap.csv", index=False,
                                 float_format="%.4g")
        if result.transfers is not None and result.transfer_fit is not None:
            result.transfers.to_csv(tmp / "transfers.csv", index=False, float_format="%.4g")
            result.transfer_fit.to_csv(tmp / "transfer_fit.csv", index=False,
                                       float_format="%.6g")
        plot_accuracy(result.accuracy, tmp / "accuracy.png", f"Predictor MAPE: {title}")
        plot_learning_curves(result.curves, tmp / "learning_curve.png",
                             f"Error vs observations: {title}")
        plot_by_overlap(result.by_overlap, tmp / "error_by_overlap.png",
                        f"Bias by overlap (random split): {title}")
        summary = {
            "command": "strait-sim " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "profile": bundle.name, "device": bundle.device_name,
            "synthetic": bool(bundle.meta.get("synthetic", False)),
            "bundle_sha256": bundle.content_hash, "seed": seed,
            "predictors": list(result.accuracy["predictor"].drop_duplicates()),
            "notes": result.notes,
        }
        (tmp / MARKER).write_text(json.dumps(summary, indent=2) + "\n")
    _print(result, title, out)


def _print(result, title: str, out: Path) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 110))
    table = Table(title=f"Interference predictors on {title}")
    for col in ("scenario", "predictor", "n_test", "MAPE %", "MSE ms²", "P90 %", "max %",
                "bias %"):
        table.add_column(col, justify="left" if col in ("scenario", "predictor") else "right")
    for r in result.accuracy.itertuples(index=False):
        table.add_row(r.scenario, r.predictor, str(r.n_test), f"{r.mape_pct:.2f}",
                      f"{r.mse_ms2:.4g}", f"{r.p90_rel_err_pct:.2f}",
                      f"{r.max_rel_err_pct:.1f}", f"{r.bias_pct:+.2f}")
    console.print(table)
    for r in result.scenarios.itertuples(index=False):
        if r.status != "evaluated":
            console.print(f"{r.scenario}: {r.note}")
    for r in result.noise.itertuples(index=False):
        console.print(f"noise floor, {r.samples}: each sample vs the median of its "
                      f"repetitions: MAPE {r.mape_pct:.2f}%, P90 {r.p90_rel_err_pct:.2f}% "
                      f"({r.n} samples)")
    if result.transfers is not None:
        t = Table(title="Copy-time models: fair sharing (the predictor) and two references")
        for col in ("direction", "scenario", "model", "sizes", "n_test", "MAPE %", "P90 %",
                    "max %", "bias %"):
            t.add_column(col)
        for r in result.transfers.itertuples(index=False):
            t.add_row(r.direction, r.scenario, r.model, r.sizes, str(r.n_test),
                      f"{r.mape_pct:.2f}", f"{r.p90_rel_err_pct:.2f}",
                      f"{r.max_rel_err_pct:.1f}", f"{r.bias_pct:+.2f}")
        console.print(t)
    for note in result.notes:
        console.print(note)
    console.print(f"wrote {out}")
