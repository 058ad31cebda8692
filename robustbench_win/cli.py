"""Command line: ``robustbench-win list|train|run|attack|report|leakage`` (also ``python -m robustbench_win``).

Each command is a thin wrapper over an importable function that returns data:
:func:`robustbench_win.run.runner.run_suite`, :func:`robustbench_win.train.obtain.obtain_model`,
:func:`robustbench_win.report.build_report`.

Exit status and what goes to stderr:

- 0: done.
- 2: an error the user can fix (:class:`robustbench_win.errors.UserError`, or a file the
  operating system refuses): one line saying what was expected and how to fix it, no traceback.
  A run in which every model failed ends so too, after its report is written.
- 1: an internal error (a bug in the suite or in a plug-in): one line naming it and the file
  its full traceback was written to. ``--debug`` (or ``ROBUSTBENCH_WIN_DEBUG=1``) lets every
  error through with its traceback instead.
- 130 (SIGINT, Ctrl-C) or 143 (SIGTERM): stopped; the workers are stopped too, and one line says
  what is saved and that the same command resumes. 128 + the signal number is the status a
  shell reports for a process the signal killed, so a scheduler reads it the same way.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from robustbench_win.atomic import WriteError, write_atomic
from robustbench_win.errors import BadValueError, UserError
from robustbench_win.train.checkpoints import CheckpointError, CheckpointStore, ModelSpec, load_model
from robustbench_win.data.datasets import default_cache_dir
from robustbench_win.run.executors import EXECUTORS
from robustbench_win.run.folder_lock import run_holding
from robustbench_win.measure.leakage import N_FFT, model_leakage_table, overall_leakage
from robustbench_win.report.markdown import pipe_table
from robustbench_win.models.windows import WINDOWS
from robustbench_win.registry import ATTACKS, DATASETS, MODELS, PluginError, Registry, load_plugin
from robustbench_win.report.build import build_report
from robustbench_win.report.compare import write_comparison
from robustbench_win.run.runner import DataRequest, check_weights, load_data, resolve_device, run_suite
from robustbench_win.store.run_folder import RunFolder
from robustbench_win.suite import DEFAULT_RADII, DEFAULT_SUITE, load_suite, parse_value, shipped_suites, weights_suite
from robustbench_win.data.prepare import prepare_data
from robustbench_win.train.config import PRECISIONS, TrainConfig
from robustbench_win.train.obtain import obtain_model

# Errors a user can cause: printed as one clear line (exit status 2), never as a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1
DEBUG_ENV = "ROBUSTBENCH_WIN_DEBUG"  # "1": every error goes through with its traceback, as --debug


class RunStoppedError(UserError, OSError):
    """A run stopped because a result could not be written; the message says what is saved."""


class AllModelsFailedError(UserError, RuntimeError):
    """Every model of a run failed to train or load: the report holds nothing to compare."""


class Stopped(KeyboardInterrupt):
    """A signal asked the command to stop.

    Attributes:
        signum: The signal (SIGINT or SIGTERM).
        saved: What the command keeps, in words (empty: nothing to say beyond the default).
    """

    def __init__(self, signum: int, saved: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.saved = saved


KINDS = ("models", "datasets", "attacks", "suites")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    plugin_help = "import a module name or a .py file that registers models, data sets or attacks (repeatable)"
    debug_help = f"let every error through with its Python traceback (or set {DEBUG_ENV}=1)"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE", help=plugin_help)
    common.add_argument("--debug", action="store_true", help=debug_help)
    parser = argparse.ArgumentParser(prog="robustbench-win",
                                     description="Train baseline and windowed CNNs at several kernel sizes, attack them, compare.")
    # Accepted before the command too; a separate dest so the command's default cannot erase it.
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE", dest="global_plugins", help=plugin_help)
    parser.add_argument("--debug", action="store_true", dest="global_debug", help=debug_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", parents=[common], help="list registered models, data sets, attacks or suites")
    listing.add_argument("kind", choices=KINDS)
    listing.add_argument("pattern", nargs="?", default="*", help="shell-style wildcard, e.g. 'spatial-*'")

    train = commands.add_parser("train", parents=[common], help="train (or load) one model and print its test accuracy")
    _add_train_arguments(train)

    run = commands.add_parser("run", parents=[common], help="run a suite: train, attack, write tables and figures")
    run.add_argument("suite", nargs="?", default=DEFAULT_SUITE, help="preset name (robustbench-win list suites) or a .toml path")
    run.add_argument("--out", type=Path, help="output folder (default reports/<suite name>); rerun to resume")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="override a suite field, e.g. --set train.epochs=3 --set 'kernel_sizes=[3,7]'")
    _add_data_arguments(run)
    _add_executor_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    _add_attack_command(commands, common)

    report = commands.add_parser("report", parents=[common], help="rebuild tables, figures and summary from stored results")
    report.add_argument("out", type=Path, help="a run folder written by 'robustbench-win run'")

    compare = commands.add_parser("compare", parents=[common],
                                  help="one page across runs: every run's verdict rows, each claim pooled, a forest plot")
    compare.add_argument("folders", nargs="+", type=Path, metavar="DIR", help="run folders or committed reports")
    compare.add_argument("--out", type=Path, default=Path("reports/compare"), help="output folder (default reports/compare)")
    _add_leakage_parser(commands, common)
    return parser


DEFAULT_ATTACKS = "deepfool,fmn"  # the paper's DeepFool metric and a strong minimal-norm attack


def _add_attack_command(commands: Any, common: argparse.ArgumentParser) -> None:
    attack = commands.add_parser("attack", parents=[common],
                                 help="attack a model trained elsewhere (a state-dict file) and write its report")
    attack.add_argument("--model", required=True, help="registered model name the weights belong to")
    attack.add_argument("--weights", required=True, type=Path, help="state-dict file (torch.save(model.state_dict(), PATH))")
    attack.add_argument("--dataset", required=True, help="registered data set or imagefolder:PATH")
    attack.add_argument("--attacks", default=DEFAULT_ATTACKS, help=f"comma-separated attack names (default {DEFAULT_ATTACKS})")
    attack.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a model argument the weights were trained with, value parsed as TOML (repeatable); "
                             "kernel_size and window also label the records")
    attack.add_argument("--samples", type=_positive_int, default=100, help="test images attacked (default 100)")
    attack.add_argument("--radii", default=",".join(f"{r:g}" for r in DEFAULT_RADII),
                        help="comma-separated L2 radii for robust accuracy")
    attack.add_argument("--out", type=Path, help="output folder (default reports/attack-<weights file stem>)")
    _add_data_arguments(attack)
    attack.add_argument("--quiet", action="store_true", help="no progress bars")


def _model_args(items: list[str]) -> dict[str, Any]:
    """``--arg KEY=VALUE`` options as keyword arguments (values parsed as TOML)."""
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadValueError(f"--arg expects KEY=VALUE, got '{item}'")
        kwargs[key.strip().replace("-", "_")] = parse_value(value.strip())
    return kwargs


def _add_leakage_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    leakage = commands.add_parser("leakage", parents=[common],
                                  help="spectral leakage of every conv layer of one checkpoint")
    leakage.add_argument("checkpoint", type=Path, help="a checkpoint file (.pt) written by 'train' or 'run'")
    leakage.add_argument("--n-fft", type=_positive_int, default=N_FFT, metavar="N",
                         help=f"zero-padded DFT size, at least the largest kernel (default {N_FFT})")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="where torchvision data sets live (default ./data or $ROBUSTBENCH_WIN_DATA)")
    parser.add_argument("--download", action="store_true", help="allow downloading torchvision data sets")
    parser.add_argument("--checkpoint-dir", type=Path, help="checkpoint store (default ~/.cache/robustbench-win/checkpoints)")
    parser.add_argument("--device", help="auto, cpu or cuda[:N] (default: the suite's, else auto)")
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="CPU threads for torch, per worker with --jobs or --executor ray (default: torch's, shared out among the workers); results repeat exactly for the same count")


def _add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=_positive_int, default=1, metavar="N",
                        help="models trained and attacked side by side in N local worker processes, each with "
                             "its share of the CPU threads (or its own GPU); default 1")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local processes (default), or one Ray task per model (pip install 'robustbench-win[ray]')")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="an existing Ray cluster (default: start a local Ray instance); the run folder and "
                             "checkpoint store must be on storage every node sees")


def _non_negative_int(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are None: a flag the user does not give never overrides the model's own default.
    parser.add_argument("--model", default="paper-cnn-small", help="registered model name (default paper-cnn-small)")
    parser.add_argument("--dataset", default="mnist5k", help="registered data set or imagefolder:PATH (default mnist5k)")
    parser.add_argument("--kernel-size", type=int, help="odd kernel size of the block convs")
    parser.add_argument("--window", choices=WINDOWS, help="window tapering the kernels")
    parser.add_argument("--width", type=int, help="channels of the block convs")
    parser.add_argument("--depth", type=int, help="conv layers in all (paper CNN)")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="any other model argument, value parsed as TOML (repeatable)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32, or bf16 autocast for training")
    parser.add_argument("--train-size", type=int, help="stratified training subset")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="training seed, an integer >= 0 (default 0)")
    _add_data_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robustbench-win`` console script; returns the exit status (see the module)."""
    args = build_parser().parse_args(argv)
    _show_warnings()
    debug = args.global_debug or args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with _signals_stop_the_command():
            for plugin in [*args.global_plugins, *args.plugin]:
                load_plugin(plugin)
            if getattr(args, "threads", None):
                torch.set_num_threads(args.threads)
            return _COMMANDS[args.command](args)
    except KeyboardInterrupt as stop:
        print(_stopped_line(stop), file=sys.stderr)
        return 128 + getattr(stop, "signum", signal.SIGINT)
    except Exception as error:
        if debug:
            raise
        return _report_error(error)


def _report_error(error: Exception) -> int:
    """Print ``error`` as one line (a user's error, or an internal one with its traceback in a file); return the status."""
    if isinstance(error, USER_ERRORS):
        print(f"robustbench-win: error: {error}", file=sys.stderr)
        if isinstance(error, PluginError) and error.details:
            print(error.details.rstrip("\n"), file=sys.stderr)
        return EXIT_USER_ERROR
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        # The operating system refused a file the user named or owns (permissions, a missing folder).
        print(f"robustbench-win: error: cannot use '{error.filename}': {error.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    where = _write_traceback(error)
    kept = f"the full traceback is in {where}" if where else "its traceback could not be written to a file"
    print(f"robustbench-win: internal error: {type(error).__name__}: {_first_line(error)} (a bug in robustbench-win "
          f"or in a plug-in, not in what you asked for; {kept}; --debug or {DEBUG_ENV}=1 prints it here)", file=sys.stderr)
    return EXIT_INTERNAL_ERROR


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "no message"


def _write_traceback(error: BaseException) -> Path | None:
    """Write the command line and the traceback of ``error`` to a new file in the cache (else the temp folder)."""
    text = (f"robustbench-win internal error, pid {os.getpid()}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(error)))
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (default_cache_dir() / "errors", Path(tempfile.gettempdir()) / "robustbench-win"):
        try:
            return write_atomic(folder / name, text)
        except OSError:
            continue
    return None


@contextmanager
def _signals_stop_the_command() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Stopped` (as SIGINT raises ``KeyboardInterrupt``).

    The exception unwinds the command like Ctrl-C: the executor stops its workers, every file
    written is complete (atomic writes), and :func:`main` prints one line. A second SIGTERM
    while stopping ends the process at once. Only the main thread can take signals; elsewhere
    (a command run from a worker thread) the block changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signum, signal.SIG_DFL)
        raise Stopped(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped_line(stop: KeyboardInterrupt) -> str:
    """The one line a stopped command prints: the signal, what is saved, and that the same command goes on."""
    name = signal.Signals(getattr(stop, "signum", signal.SIGINT)).name
    saved = getattr(stop, "saved", "") or "every file written so far is complete"
    start = "\n" if name == "SIGINT" and sys.stderr.isatty() else ""  # after the terminal's ^C
    return f"{start}robustbench-win: stopped by {name}: {saved}; run the same command again to resume"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _stopped_run(stop: KeyboardInterrupt, out: Path) -> Stopped:
    """``stop`` of a run or attack command, saying what its run folder keeps."""
    models, files = RunFolder(out).saved() if out.is_dir() else (0, 0)
    saved = (f"{_count(models, 'model')} with clean accuracy and {_count(files, 'per-sample result file')} "
             f"are saved in {out / 'runs'}" if models or files else f"no model had finished, nothing is saved in {out}")
    return Stopped(getattr(stop, "signum", signal.SIGINT), saved)


class _StderrHandler(logging.Handler):
    """Log records as ``robustbench-win: warning: ...`` on the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"robustbench-win: {record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    """Print the package's warnings (a long CPU training ahead, rejected attack results) once each."""
    logger = logging.getLogger("robustbench_win")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler(logging.WARNING))
        logger.propagate = False


def command_list(args: argparse.Namespace) -> int:
    """Print registered names with the first line of their docstring."""
    if args.kind == "suites":
        rows = [(name, load_suite(name).description) for name in sorted(shipped_suites())]
    else:
        registry: Registry[Any] = {"models": MODELS, "datasets": DATASETS, "attacks": ATTACKS}[args.kind]
        rows = [(name, registry.describe(name)) for name in registry.names(args.pattern)]
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}".rstrip())
    return 0


def command_train(args: argparse.Namespace) -> int:
    """Train or load one model; print its test accuracy and checkpoint path."""
    kwargs: dict[str, Any] = {"kernel_size": args.kernel_size, "window": args.window, "width": args.width, "depth": args.depth}
    kwargs.update(_model_args(args.arg))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, milestones=(), precision=args.precision)
    spec = ModelSpec(args.model, {k: v for k, v in kwargs.items() if v is not None}, args.dataset, config,
                     seed=args.seed, train_size=args.train_size)
    data = prepare_data(args.dataset, train_size=args.train_size, test_size=None, data_dir=args.data_dir, download=args.download)
    store = CheckpointStore(args.checkpoint_dir) if args.checkpoint_dir else CheckpointStore()
    trained = obtain_model(spec, data, store, device=resolve_device(args.device or "auto"), progress=not args.quiet)
    assert trained.test_correct is not None  # obtain_model evaluates by default
    origin = "loaded" if trained.reused else f"trained in {trained.metrics['train_seconds']:.1f} s"
    print(f"test accuracy: {100 * trained.test_correct.float().mean():.2f}% ({data.display_name}, {origin})")
    print(f"checkpoint: {trained.checkpoint}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    """Run or resume a suite, build its report, then print where the report is."""
    config = load_suite(args.suite, args.overrides)
    out = args.out or Path("reports") / config.name
    try:
        run_suite(config, out, data_dir=args.data_dir, download=args.download,
                  checkpoint_dir=args.checkpoint_dir, device=args.device, progress=not args.quiet,
                  jobs=args.jobs, executor=args.executor, ray_address=args.ray_address, threads=args.threads,
                  plugins=[*args.global_plugins, *args.plugin])
        written = build_report(out)
    except WriteError as error:
        raise RunStoppedError(_stopped_message(error, out)) from error
    except KeyboardInterrupt as stop:
        raise _stopped_run(stop, out) from None
    _print_report(out, written)
    _check_some_model_trained(out)
    return 0


def _check_some_model_trained(out: Path) -> None:
    """Raise :class:`AllModelsFailedError` when every model of the run folder failed (its report is written).

    A run in which only some models failed exits 0: its report compares the others and lists the failures.
    """
    folder = RunFolder(out)
    records = {model_id: folder.read_clean(model_id) for model_id in folder.model_ids()}
    failed = {m: r for m, r in records.items() if r is not None and r.get("status") != "ok"}
    if not records or len(failed) < len(records):
        return
    first, record = next(iter(failed.items()))
    raise AllModelsFailedError(
        f"every model of the run failed ({len(failed)} of {len(records)}); the first, {first}: "
        f"{(str(record.get('error') or '') or 'no error recorded').splitlines()[0]}. {out / 'summary.md'} lists each failure. "
        f"Fix the cause, delete the failed models' clean.json under {out / 'runs'} (a failed model is not retried "
        f"otherwise) and run the same command again")


def _stopped_message(error: WriteError, out: Path) -> str:
    """Why a run stopped, what it kept, and how to go on."""
    fix = "free space on that disk" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "make that folder writable"
    models, files = RunFolder(out).saved() if out.is_dir() else (0, 0)
    if not models:
        return f"{error}. No model had finished, so nothing was saved. To go on, {fix} or choose another --out."
    return (f"{error}. Every finished result is saved in {out / 'runs'} ({models} models with clean accuracy, "
            f"{files} per-sample result files). To go on, {fix} (or choose another --checkpoint-dir) and run "
            f"the same command again: it resumes where it stopped. `robustbench-win report {out}` builds the "
            f"report from what is saved.")


def command_attack(args: argparse.Namespace) -> int:
    """Attack one model trained elsewhere, write its per-sample records and report, print where."""
    try:
        radii = tuple(float(r) for r in args.radii.split(",") if r.strip())
    except ValueError:
        raise BadValueError(f"--radii expects comma-separated numbers such as 0.5,1,2, got '{args.radii}'") from None
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    config = weights_suite(model=args.model, weights=args.weights, dataset=args.dataset, attacks=attacks,
                           model_args=_model_args(args.arg), attack_samples=args.samples, radii=radii)
    check_weights(config, load_data(DataRequest.of(config, args.data_dir, args.download)))  # before writing anything
    out = args.out or Path("reports") / config.name
    try:
        run_suite(config, out, data_dir=args.data_dir, download=args.download, device=args.device,
                  progress=not args.quiet)
        written = build_report(out)
    except WriteError as error:
        raise RunStoppedError(_stopped_message(error, out)) from error
    except KeyboardInterrupt as stop:
        raise _stopped_run(stop, out) from None
    _print_report(out, written)
    _check_some_model_trained(out)
    return 0


class ReportFolderError(UserError, RuntimeError):
    """``report`` was given a path that is not a run folder, or a folder a run is still writing."""


def command_report(args: argparse.Namespace) -> int:
    """Rebuild every table and figure of a run folder from its stored per-sample results.

    A folder a run is still writing is refused rather than reported from partial records; the
    run builds its report itself when it finishes.
    """
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise ReportFolderError(f"'{out}' is a file; `report` takes the run folder that holds it "
                                f"(the --out of `robustbench-win run`), e.g. robustbench-win report {out.parent}")
    holder = run_holding(out)
    if holder is not None:
        raise ReportFolderError(f"'{out}' is being written by a run ({holder}); its records are not complete yet. "
                                f"Wait for the run to finish (it writes the report itself), or stop it and then "
                                f"build the report from what it saved")
    _print_report(out, build_report(out))
    return 0


def command_compare(args: argparse.Namespace) -> int:
    """Compare run folders: per-run effects, pooled estimates across runs and a forest plot."""
    written = write_comparison(args.folders, args.out)
    print(next(p for p in written if p.name == "compare.md").read_text())
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def command_leakage(args: argparse.Namespace) -> int:
    """Print the spectral leakage of each conv layer of a checkpoint's model, and the model's overall."""
    if not args.checkpoint.is_file():
        raise CheckpointError(f"no checkpoint file at {args.checkpoint}")
    model, payload = load_model(args.checkpoint)
    table = model_leakage_table(model, n_fft=args.n_fft)
    spec = payload["spec"]
    print(f"{spec['model']} {spec['model_kwargs']} trained on {spec['dataset']} (seed {spec['seed']})")
    header = ["layer", "k", "window", "slices", "median", "q25", "q75", "mean"]
    rows = [[r.layer, r.kernel_size, r.window, r.n_slices, *(f"{v:.4f}" for v in
             (r.leakage_median, r.leakage_q25, r.leakage_q75, r.leakage_mean))] for r in table.itertuples()]
    print(pipe_table(header, rows, numeric=5))
    print(f"overall leakage (mean of the layers' medians, N = {args.n_fft}): {overall_leakage(table):.4f}")
    return 0


def _print_report(out: Path, written: list[Path]) -> None:
    summary = next((p for p in written if p.name == "summary.md"), None)
    if summary is not None:
        print(summary.read_text())
    print(f"wrote {len(written)} files to {out}")


_COMMANDS = {"list": command_list, "train": command_train, "run": command_run, "attack": command_attack,
             "report": command_report, "compare": command_compare, "leakage": command_leakage}

if __name__ == "__main__":
    raise SystemExit(main())
