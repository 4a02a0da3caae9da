"""Entry point of ``strait-sim``: the typer app and the one-line error contract.

Each command group lives in its own module with a ``register(app)`` function, so that the
parts of the project (core, workloads, profiler, predictors, policies, live, sweeps) own
their commands without touching each other's files. Heavy imports happen inside commands.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from strait_sim.errors import UserError

COMMAND_MODULES = (
    "strait_sim.cli.run_cmd",
    "strait_sim.cli.profiles_cmd",
    "strait_sim.cli.policies_cmd",
    "strait_sim.cli.workload_cmd",
    "strait_sim.cli.profile_cmd",
    "strait_sim.cli.predict_cmd",
    "strait_sim.cli.compare_cmd",
    "strait_sim.cli.validate_cmd",
    "strait_sim.cli.sweep_cmd",
    "strait_sim.cli.plan_cmd",
    "strait_sim.cli.report_cmd",
)

app = typer.Typer(
    name="strait-sim",
    help="Which scheduling policy meets the deadlines when DNN models share a GPU?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: Rich markup would swallow every [default: ...] written in a help text,
    # and Rich's layout prints a type even for flags (--help <bool>).
    rich_markup_mode=None,
    context_settings={"max_content_width": 100},
)


def _print_version(value: bool) -> None:
    if value:
        from strait_sim import __version__

        typer.echo(f"strait-sim {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
) -> None:
    """Which scheduling policy meets the deadlines when DNN models share a GPU?"""


def _register_all() -> None:
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


_register_all()


def _click_exception_types() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(ClickException, Abort, Exit) classes of every click in use: typer >= 0.26 ships
    its own copy (``typer._click``, with Abort/Exit in ``typer.exceptions``); older typer
    uses the ``click`` package."""
    usage, abort, exits = [], [], []
    for exc_mod, flow_mod in (("typer._click.exceptions", "typer.exceptions"),
                              ("click.exceptions", "click.exceptions")):
        try:
            exceptions = importlib.import_module(exc_mod)
            flow = importlib.import_module(flow_mod)
        except ImportError:
            continue
        for target, module, name in ((usage, exceptions, "ClickException"),
                                     (abort, flow, "Abort"), (exits, flow, "Exit")):
            cls = getattr(module, name, None)
            if isinstance(cls, type):
                target.append(cls)
    return tuple(usage), tuple(abort), tuple(exits)


#: Optional dependencies: top-level module -> what to install. torch is named with its
#: build because an unpinned install pulls the multi-GB CUDA wheel on any machine.
OPTIONAL_MODULES = {
    "torch": "the torch extra: install the torch build for your machine first "
             "(CPU: pip install torch --index-url https://download.pytorch.org/whl/cpu), "
             "then pip install 'strait-sim[torch]'",
    "torchvision": "torchvision matching your torch build (pip install torchvision)",
    "transformers": "transformers (pip install transformers)",
    "dask": "the dask extra: pip install 'strait-sim[dask]'",
    "distributed": "the dask extra: pip install 'strait-sim[dask]'",
    "pynvml": "the gpu extra: pip install 'strait-sim[gpu]' (nvidia-ml-py)",
    "cuda": "the gpu extra: pip install 'strait-sim[gpu]' (cuda-python)",
    "tensorrt": "TensorRT for your CUDA version (pip install tensorrt)",
}


def missing_dependency_message(exc: ImportError) -> str | None:
    """One line naming what to install, when ``exc`` is a missing optional dependency."""
    name = (getattr(exc, "name", None) or "").partition(".")[0]
    if not isinstance(exc, ModuleNotFoundError) or name not in OPTIONAL_MODULES:
        return None
    return f"this command needs {name}, which is not installed: install {OPTIONAL_MODULES[name]}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and exit status 2."""
    usage, abort, exits = _click_exception_types()
    try:
        result = app(args=argv, standalone_mode=False)
        if isinstance(result, int):  # typer.Exit(code) under standalone_mode=False
            return result
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the user named cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = missing_dependency_message(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        return int(exc.code or 0)
    except usage as exc:  # bad flags, missing arguments, bare `strait-sim` (prints help)
        exc.show()
        return exc.exit_code
    except abort:
        print("aborted", file=sys.stderr)
        return 1
    except exits as exc:
        return int(exc.exit_code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
