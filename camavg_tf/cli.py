"""The ``camavg`` command: ``camavg demo`` and ``camavg evaluate``.

``camavg demo`` trains (once, then cached) a small CNN on seeded synthetic images whose object
location is known, makes CAMs with tf-keras-vis and reference maps, and reports their Average
Drop, Average Increase and Average Gain. ``camavg evaluate`` gives the same report for a saved
Keras model and the user's own data.

Both print one table (or JSON / CSV with ``--format``) and write ``results.json``,
``results.csv`` and ``report.png`` to ``--out``. Errors print one line,
``camavg: error: <message>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

EXIT_USAGE = 2
FORMATS = ("table", "json", "csv")
INPUT_KEYS = ("inputs", "x", "images")


class CommandError(ValueError):
    """A bad command line: missing file, unknown layer, mismatched shapes."""


# ----------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="camavg-report", metavar="DIR",
                        help="folder for results.json, results.csv and report.png (default: ./camavg-report)")
    common.add_argument("--format", choices=FORMATS, default="table",
                        help="what to print: an aligned table (default), JSON or CSV")
    common.add_argument("--quiet", action="store_true", help="no progress bar and no notes on standard error")
    common.add_argument("--compare", action="store_true",
                        help="also compare every pair of methods (paired intervals and p-values)")
    common.add_argument("--no-plot", action="store_true", help="skip report.png (no matplotlib needed)")
    common.add_argument("--nan-policy", choices=("raise", "omit"), default="raise",
                        help="non-finite inputs, CAMs or scores: stop with an error (default), or skip "
                        "those samples and count them in the table's 'skipped' column")

    parser = argparse.ArgumentParser(
        prog="camavg",
        description="Average Drop, Average Increase and Average Gain of class activation maps.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,evaluate}")

    demo = commands.add_parser("demo", parents=[common], help="the built-in demo on synthetic images",
                               description="Train (once, cached) a small CNN on synthetic images with known "
                               "object masks; compare Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM and reference maps.")
    demo.add_argument("--n-images", type=int, default=128, metavar="N", help="evaluation images (default 128)")

    evaluate = commands.add_parser("evaluate", parents=[common], help="evaluate CAMs of a saved Keras model",
                                   description="Evaluate CAMs of a saved Keras model on your own inputs.")
    evaluate.add_argument("--model", required=True, metavar="M.keras", help="a saved Keras model")
    evaluate.add_argument("--inputs", required=True, metavar="X.npy|X.npz",
                          help="(N, H, W, C) inputs; an .npz with one array or an array named inputs, x or images")
    targets = evaluate.add_mutually_exclusive_group(required=True)
    targets.add_argument("--targets", metavar="y.npy", help="(N,) integer target class of each input")
    targets.add_argument("--top1", action="store_true", help="target the model's top-1 class on each input")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--cams", nargs="+", metavar="C.npy", help="(N, H, W) CAMs in [0, 1]; the method name is the file's stem")
    source.add_argument("--method", metavar="M1,M2", help="make CAMs with tf-keras-vis: gradcam,gradcam++,scorecam,layercam")
    evaluate.add_argument("--layer", metavar="NAME", help="the conv layer to take the CAMs at (with --method)")
    evaluate.add_argument("--batch-size", type=int, metavar="B", help="samples per forward pass (default 32)")
    evaluate.add_argument("--activation", choices=("softmax", "sigmoid"),
                          help="apply this to the model's outputs (for a model that returns logits)")
    return parser


# ----------------------------------------------------------------------------- progress
class _Progress:
    """A tqdm bar on standard error, or nothing with --quiet (stdout stays clean for JSON)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self._bar = None
        if not quiet:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, file=sys.stderr, unit="step", leave=False, dynamic_ncols=True)
            except ImportError:  # tqdm is optional: fall back to one line per step
                self._bar = None
        self._quiet = quiet
        self._step = 0
        self._total = total

    def step(self, description: str) -> None:
        """Announce the step about to run."""
        if self._bar is not None:
            self._bar.set_description_str(description)
        elif not self._quiet:
            print(f"[{self._step + 1}/{self._total}] {description}", file=sys.stderr)

    def done(self) -> None:
        """Count the announced step as finished."""
        self._step += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


# ----------------------------------------------------------------------------- loading
def _existing_file(path: str, what: str) -> Path:
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return file


def load_inputs(path: str) -> np.ndarray:
    """The (N, ...) inputs from an ``.npy`` or ``.npz`` file."""
    file = _existing_file(path, "--inputs")
    if file.suffix == ".npz":
        with np.load(file, allow_pickle=False) as archive:
            names = list(archive.files)
            if len(names) == 1:
                return archive[names[0]]
            for key in INPUT_KEYS:
                if key in names:
                    return archive[key]
        raise CommandError(
            f"--inputs {path} holds arrays {names}: keep one array in the .npz, or name the inputs "
            f"one of {', '.join(INPUT_KEYS)}."
        )
    return np.load(file, allow_pickle=False)


def load_targets(path: str, n: int) -> np.ndarray:
    """(N,) integer targets; one-hot (N, K) targets are read as their argmax."""
    targets = np.load(_existing_file(path, "--targets"), allow_pickle=False)
    if targets.ndim == 2 and targets.shape[1] > 1:
        targets = targets.argmax(axis=1)
    targets = targets.reshape(-1) if targets.ndim == 2 and targets.shape[1] == 1 else targets
    if targets.ndim != 1 or targets.shape[0] != n:
        raise CommandError(
            f"--targets {path} has shape {targets.shape} but --inputs has {n} samples: pass one "
            f"target class per input, shape ({n},)."
        )
    if not (np.issubdtype(targets.dtype, np.integer) or np.issubdtype(targets.dtype, np.bool_)):
        if not np.all(np.isfinite(targets)) or not np.all(targets == np.round(targets)):
            raise CommandError(f"--targets {path} must hold integer class indices, got dtype {targets.dtype}.")
    return targets.astype(np.int64)


def load_cams(paths: Sequence[str], n: int) -> dict[str, np.ndarray]:
    """``{file stem: (N, h, w) CAMs}``, checked against the number of inputs."""
    cams: dict[str, np.ndarray] = {}
    for path in paths:
        file = _existing_file(path, "--cams")
        array = np.load(file, allow_pickle=False)
        if array.ndim == 4 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim != 3 or array.shape[0] != n:
            raise CommandError(
                f"--cams {path} has shape {array.shape} but --inputs has {n} samples: pass "
                f"(N, H, W) CAMs with N = {n}, one map per input."
            )
        if file.stem in cams:
            raise CommandError(f"--cams has two files named {file.stem!r}: the method name is the file's stem, rename one.")
        cams[file.stem] = array
    return cams


def load_model(path: str):
    file = _existing_file(path, "--model")
    import keras

    try:
        return keras.models.load_model(file, compile=False)
    except (OSError, ValueError, TypeError) as error:
        raise CommandError(f"--model {path} could not be loaded as a Keras model: {error}") from None


def _check_input_shape(model, inputs: np.ndarray) -> None:
    expected = getattr(model, "input_shape", None)
    if not isinstance(expected, tuple) or len(expected) == 0 or isinstance(expected[0], tuple):
        return  # several inputs or an unbuilt model: leave it to AveragesCam
    if inputs.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], inputs.shape[1:])):
        raise CommandError(
            f"--inputs has shape {inputs.shape} but the model takes {tuple(expected)}: pass inputs "
            f"shaped like the model's input, with the samples first."
        )


def _top1_targets(model, inputs: np.ndarray, batch_size: int | None) -> np.ndarray:
    outputs = np.asarray(model.predict(inputs, batch_size=batch_size or 32, verbose=0))
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        # One unit: a probability (or logit) of the positive class; top-1 is the likelier side.
        threshold = 0.5 if outputs.min() >= 0.0 and outputs.max() <= 1.0 else 0.0
        return (outputs[:, 0] > threshold).astype(np.int64)
    return outputs.reshape(outputs.shape[0], -1).argmax(axis=1).astype(np.int64)


# ----------------------------------------------------------------------------- evaluation
def _evaluate_all(model, inputs, cams: Mapping[str, np.ndarray], score, *, batch_size, activation, nan_policy, progress: _Progress):
    from camavg_tf import AveragesCam

    metrics = AveragesCam(model, inputs, batch_size=batch_size, activation=activation, nan_policy=nan_policy)
    results = {}
    for method, cam_set in cams.items():
        progress.step(f"evaluating {method}")
        # evaluate_many over a one-method list: the same pass, with a progress step per method.
        results[method] = metrics.evaluate_many([cam_set], score)[0]
        progress.done()
    return results


def compare_all(results: Mapping[str, Any], level: float = 0.95, nan_policy: str = "raise") -> dict[tuple[str, str], Any]:
    """``camavg_core.compare`` on every pair of methods (same samples, paired)."""
    try:
        from camavg_core import compare
    except ImportError:
        raise CommandError("--compare needs camavg_core.compare, which this install of camavg lacks.") from None
    comparisons = {}
    for method_a, method_b in itertools.combinations(results, 2):
        result_a, result_b = results[method_a], results[method_b]
        comparisons[(method_a, method_b)] = compare(
            result_a.y_c, result_a.o_c, result_b.o_c, level=level, names=(method_a, method_b), nan_policy=nan_policy
        )
    return comparisons


def _emit(args: argparse.Namespace, results, comparisons, images, cams, title: str) -> None:
    from camavg_tf import report

    if args.format == "json":
        records = report.result_records(results)
        if comparisons is not None:
            print(report.format_json({"results": records, "comparisons": report.comparison_records(comparisons)}))
        else:
            print(report.format_json(records))
    elif args.format == "csv":
        sys.stdout.write(report.format_csv(results))
    else:
        print(report.format_table(results))
        if comparisons is not None:
            print()
            print(report.format_comparison_table(comparisons))
    written = report.write_text_outputs(args.out, results, comparisons)
    if not args.no_plot and np.ndim(images) != 4:
        _note(args, f"camavg: note: report.png shows (N, H, W, C) images; inputs of shape {np.shape(images)} are not drawn.")
    elif not args.no_plot:
        try:
            written.append(report.plot_report(Path(args.out) / "report.png", results, images, cams, title=title))
        except ImportError:
            _note(args, "camavg: note: matplotlib is not installed, so report.png was not drawn (pip install matplotlib).")
    _note(args, "wrote " + ", ".join(str(path) for path in written))


def run_demo(args: argparse.Namespace) -> int:
    from camavg_tf import demo

    if args.n_images < 2:
        raise CommandError(f"--n-images must be at least 2, got {args.n_images}.")
    started = time.perf_counter()
    steps = 1 + len(demo.CAM_METHODS) + len(demo.CAM_METHODS) + len(demo.REFERENCE_MAPS)
    progress = _Progress(steps, args.quiet)
    try:
        progress.step("loading or training the demo model")
        model, trained = demo.load_or_train()
        progress.done()
        data = demo.demo_data(args.n_images)
        cams = {}
        for method in demo.CAM_METHODS:
            progress.step(f"making {method} CAMs")
            cams[method] = demo.cam_method(method, model, data.images, data.labels)
            progress.done()
        cams.update(demo.reference_maps(data.masks))
        score = demo.target_score(model, data.labels)
        results = _evaluate_all(model, data.images, cams, score, batch_size=None, activation=None,
                                nan_policy=args.nan_policy, progress=progress)
    finally:
        progress.close()
    comparisons = compare_all(results, nan_policy=args.nan_policy) if args.compare else None
    _emit(args, results, comparisons, data.images, cams, title=f"camavg demo: {args.n_images} synthetic images, model trained to find a coloured blob")
    _note(args, f"demo {'trained and cached the model' if trained else 'used the cached model'}; "
                f"{time.perf_counter() - started:.1f} s")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from camavg_tf import demo

    if args.batch_size is not None and args.batch_size < 1:
        raise CommandError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    methods: list[str] = []
    if args.method:
        methods = [name.strip() for name in args.method.split(",") if name.strip()]
        unknown = [name for name in methods if name not in demo.CAM_METHODS]
        if unknown or not methods:
            raise CommandError(f"--method {args.method!r}: choose from {','.join(demo.CAM_METHODS)}.")
        if not args.layer:
            raise CommandError("--method needs --layer NAME, the conv layer to take the CAMs at.")
    inputs = load_inputs(args.inputs)
    if inputs.ndim < 2 or inputs.shape[0] == 0:
        raise CommandError(f"--inputs has shape {inputs.shape}: pass (N, H, W, C) inputs with N >= 1.")
    targets = load_targets(args.targets, inputs.shape[0]) if args.targets else None
    cams = load_cams(args.cams, inputs.shape[0]) if args.cams else {}
    model = load_model(args.model)
    _check_input_shape(model, inputs)
    if args.layer:
        demo.check_layer(model, args.layer)
    if targets is None:
        targets = _top1_targets(model, inputs, args.batch_size)
    progress = _Progress(len(methods) + len(methods or cams), args.quiet)
    try:
        for method in methods:
            progress.step(f"making {method} CAMs")
            cams[method] = demo.cam_method(method, model, inputs, targets, layer=args.layer)
            progress.done()
        score = demo.target_score(model, targets)
        results = _evaluate_all(model, inputs, cams, score, batch_size=args.batch_size,
                                activation=args.activation, nan_policy=args.nan_policy, progress=progress)
    finally:
        progress.close()
    comparisons = compare_all(results, nan_policy=args.nan_policy) if args.compare else None
    _emit(args, results, comparisons, inputs, cams, title=f"camavg: {Path(args.model).name} on {inputs.shape[0]} inputs")
    return 0


# ----------------------------------------------------------------------------- entry point
def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FileNotFoundError) and error.filename and str(error.filename) not in message:
        message = f"{message}: {error.filename}"
    if "logits" in message and "--activation" not in message:
        message += " On the command line: --activation softmax (or sigmoid)."
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 after one ``camavg: error:`` line)."""
    # TensorFlow's C++ start-up lines (CUDA probing on a CPU machine) are noise in a report.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run_demo(args) if args.command == "demo" else run_evaluate(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"camavg: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("camavg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
