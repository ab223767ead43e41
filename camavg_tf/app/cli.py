"""The ``camavg`` command: ``camavg demo`` and ``camavg evaluate``.

``camavg demo`` trains (once, then cached) a small CNN on seeded synthetic images whose object
location is known, makes CAMs with tf-keras-vis and reference maps, reports their Average Drop,
Average Increase and Average Gain, and says in words what the numbers mean. ``camavg evaluate``
gives the same report for a saved Keras model and the user's own data.

Both print one table (or JSON / CSV with ``--format``) and write ``results.json``,
``results.csv`` and ``report.png`` into ``--out``, replacing what an earlier run left there.
A bad input prints one line, ``camavg: error: <message>``, and exits with status 2; an internal
failure prints one line and exits with status 1 (``--debug`` shows its traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from camavg_tf.app.loading import CommandError, check_targets_in_range, load_cams, load_inputs, load_targets
from camavg_tf.app.progress import Progress
from camavg_tf.app.recipes import CAM_METHODS, CLASS_NAMES, SCORECAM_MAX_N, Recipe

EXIT_INTERNAL = 1
EXIT_USAGE = 2
FORMATS = ("table", "json", "csv")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``camavg: error:`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {value}")
    return value


def _max_n(text: str) -> int | None:
    return None if text == "all" else _positive_int(text)


def _recipes_epilog() -> str:
    lines = [f"  {method:<10} {Recipe(method, 'LAYER').describe()}" for method in CAM_METHODS]
    return ("how --method makes each CAM (LAYER is --layer; change the recipe with --no-replace-to-linear\n"
            "and --scorecam-max-n; docs/command-line.md shows the same calls in Python):\n" + "\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--out", default="camavg-report", metavar="DIR",
                        help="folder for results.json, results.csv and report.png; it is replaced, "
                        "so no file of an earlier run stays (default: ./camavg-report)")
    common.add_argument("--format", choices=FORMATS, default="table",
                        help="what to print: an aligned table (default), JSON or CSV")
    common.add_argument("--quiet", action="store_true", help="no progress bar and no notes on standard error")
    common.add_argument("--compare", action="store_true",
                        help="also compare every pair of methods (paired test, interval, Holm-adjusted p-value)")
    common.add_argument("--baseline", metavar="NAME",
                        help="with --compare: compare each method against NAME instead of every pair")
    common.add_argument("--no-plot", action="store_true", help="skip report.png (no matplotlib needed)")
    common.add_argument("--nan-policy", choices=("raise", "omit"), default="raise",
                        help="non-finite inputs, CAMs or scores: stop with an error (default), or skip "
                        "those samples and count them in the table's 'skipped' column")
    common.add_argument("--normalize", action="store_true",
                        help="min-max scale each CAM to [0, 1] before masking (for maps outside [0, 1])")
    common.add_argument("--no-replace-to-linear", dest="replace_to_linear", action="store_false",
                        help="make CAMs on the model's own output instead of tf-keras-vis' ReplaceToLinear "
                        "(pre-softmax) copy of it")
    common.add_argument("--scorecam-max-n", type=_max_n, default=SCORECAM_MAX_N, metavar="K|all",
                        help=f"Score-CAM's max_N: channels it keeps (default {SCORECAM_MAX_N}; 'all' keeps every channel)")
    common.add_argument("--debug", action="store_true", help="show the traceback of an internal error")

    parser = _Parser(prog="camavg", description="Average Drop, Average Increase and Average Gain of class activation maps.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,evaluate}", parser_class=_Parser)
    demo = commands.add_parser("demo", parents=[common], help="the built-in demo on synthetic images",
                               description="Train (once, cached) a small CNN on synthetic images with known "
                               "object masks; compare Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM and reference "
                               "maps, and say what the numbers mean.",
                               epilog=_recipes_epilog().replace("LAYER is --layer", "LAYER is conv_last"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--n-images", type=_positive_int, default=128, metavar="N", help="evaluation images (default 128)")

    evaluate = commands.add_parser("evaluate", parents=[common], help="evaluate CAMs of a saved Keras model",
                                   description="Evaluate CAMs of a saved Keras model on your own inputs.",
                                   epilog=_recipes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--model", required=True, metavar="M.keras", help="a saved Keras model")
    evaluate.add_argument("--inputs", required=True, metavar="X.npy|X.npz",
                          help="(N, H, W, C) inputs; an .npz with one array or an array named inputs, x or images")
    targets = evaluate.add_mutually_exclusive_group(required=True)
    targets.add_argument("--targets", metavar="y.npy", help="(N,) integer target class (0 to K-1) of each input")
    targets.add_argument("--top1", action="store_true", help="target the model's top-1 class on each input")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--cams", nargs="+", metavar="C.npy", help="(N, H, W) CAMs in [0, 1]; the method name is the file's stem")
    source.add_argument("--method", metavar="M1,M2",
                        help=f"make CAMs with tf-keras-vis, comma-separated: {','.join(CAM_METHODS)} (recipes below)")
    evaluate.add_argument("--layer", metavar="NAME", help="the penultimate (conv) layer to take the CAMs at (with --method)")
    evaluate.add_argument("--batch-size", type=_positive_int, metavar="B", help="samples per forward pass (default 32)")
    evaluate.add_argument("--activation", choices=("softmax", "sigmoid", "identity"),
                          help="apply this to the model's outputs (for a model that returns logits)")
    return parser


def _note(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _in_context(where: str, error: Exception) -> CommandError:
    """A ValueError/TypeError from camavg's checks, prefixed with the argument it came from."""
    return CommandError(f"{where}: {error}")


def _recipes(args: argparse.Namespace, methods: Sequence[str], layer: str | None) -> dict[str, Recipe]:
    return {method: Recipe(method, layer, args.replace_to_linear, args.scorecam_max_n) for method in methods}


def _evaluate(args, model, inputs, cams, score, sources, progress, *, batch_size=None, activation=None):
    from camavg_tf import AveragesCam

    try:
        metrics = AveragesCam(model, inputs, batch_size=batch_size, activation=activation,
                              nan_policy=args.nan_policy, normalize=args.normalize)
    except (ValueError, TypeError) as error:
        raise _in_context(sources.get("inputs", "--inputs"), error) from None
    results = {}
    for method, cam_set in cams.items():
        progress.step(f"evaluating {method}")
        try:
            results[method] = metrics.evaluate_many([cam_set], score)[0]
        except (ValueError, TypeError) as error:
            raise _in_context(sources.get(method, method), error) from None
        progress.done()
    return results


def _emit(args, out, results, recipes, rows, conclusion, images, cams, title, progress: Progress) -> None:
    """Write the --out folder (under the progress bar, the picture takes a second), then print."""
    from camavg_tf.app import report
    from camavg_tf.app.output import fresh_folder

    notes = []
    progress.step("writing results" + ("" if args.no_plot else " and report.png"))
    with fresh_folder(out) as staging:
        written = report.write_text_outputs(staging, results, recipes, rows, conclusion)
        if not args.no_plot and np.ndim(images) != 4:
            notes.append(f"camavg: note: report.png shows (N, H, W, C) images; inputs of shape {np.shape(images)} are not drawn.")
        elif not args.no_plot:
            try:
                written.append(report.plot_report(staging / "report.png", results, images, cams, title=title))
            except ImportError:
                notes.append("camavg: note: matplotlib is not installed, so report.png was not drawn (pip install matplotlib).")
    progress.done()
    progress.close()
    if args.format == "json":
        records = report.result_records(results, recipes)
        payload = {"results": records, "comparisons": rows} if args.compare and rows is not None else records
        print(report.format_json(payload))
    elif args.format == "csv":
        sys.stdout.write(report.format_csv(results, recipes))
    else:
        print(report.format_table(results, recipes))
        if rows and args.compare:
            print()
            print(report.format_comparison_table(rows))
        if conclusion:
            print()
            print(conclusion)
    for note in notes + [f"wrote {', '.join(path.name for path in written)} to {out}"]:
        _note(args, note)


def run_demo(args: argparse.Namespace) -> int:
    from camavg_tf.app import demo
    from camavg_tf.app.conclusion import compare_pairs, conclusion
    from camavg_tf.app.output import check_out

    out = check_out(args.out)
    if args.n_images < 2:
        raise CommandError(f"--n-images must be at least 2, got {args.n_images}.")
    started = time.perf_counter()
    recipes = demo.demo_recipes(replace_to_linear=args.replace_to_linear, scorecam_max_n=args.scorecam_max_n)
    progress = Progress(3 + 2 * len(recipes) + len(demo.REFERENCE_MAPS), args.quiet)
    try:
        progress.step("importing TensorFlow")
        _import_frameworks()
        progress.done()
        progress.step("loading or training the demo model")
        model, trained = demo.load_or_train()
        progress.done()
        data = demo.demo_data(args.n_images)
        from camavg_tf.app.recipes import make_cams, target_score

        cams = {}
        for method, recipe in recipes.items():
            progress.step(f"making {method} CAMs")
            cams[method] = make_cams(recipe, model, data.images, data.labels)
            progress.done()
        cams.update(demo.reference_maps(data.masks))
        results = _evaluate(args, model, data.images, cams, target_score(model, data.labels), {}, progress)
        descriptions = {method: recipe.describe() for method, recipe in recipes.items()} | dict(demo.REFERENCE_RECIPES)
        # The conclusion compares the CAM methods only; --compare adds every pair, references included.
        cam_scores = {method: results[method].o_c for method in recipes}
        rows = compare_pairs(results[next(iter(recipes))].y_c, cam_scores, nan_policy=args.nan_policy)
        text = conclusion(results, rows, demo.REFERENCE_RECIPES)
        if args.compare:
            rows = compare_pairs(results[next(iter(results))].y_c, {m: r.o_c for m, r in results.items()},
                                 nan_policy=args.nan_policy, baseline=_baseline(args, results))
        _emit(args, out, results, descriptions, rows, text, data.images, cams,
              title=f"camavg demo: {args.n_images} synthetic images, a CNN trained to tell the blob's colour",
              progress=progress)
    finally:
        progress.close()
    _note(args, f"demo {'trained and cached the model' if trained else 'used the cached model'}; "
                f"{time.perf_counter() - started:.1f} s")
    return 0


def _methods(args: argparse.Namespace) -> list[str]:
    methods = [name.strip() for name in args.method.split(",") if name.strip()]
    unknown = [name for name in methods if name not in CAM_METHODS]
    if unknown or not methods:
        raise CommandError(f"--method {args.method!r}: choose from {','.join(CAM_METHODS)} ({', '.join(CLASS_NAMES.values())}).")
    if not args.layer:
        raise CommandError("--method needs --layer NAME, the penultimate (conv) layer to take the CAMs at.")
    return list(dict.fromkeys(methods))


def _import_frameworks() -> None:
    """TensorFlow, Keras and tf-keras-vis, quietly; CommandError with the install line if missing."""
    from camavg_tf.app.quiet import import_tensorflow

    try:
        import_tensorflow()
        import tf_keras_vis  # noqa: F401 - every CAM recipe and score function comes from it
    except ModuleNotFoundError as error:
        raise CommandError(f"{error.name} is not installed, and camavg's command needs it: pip install 'camavg[tf,cli]'.") from None


def _load_model(path: str):
    from camavg_tf.app.loading import existing_file

    file = existing_file(path, "--model")
    _import_frameworks()
    import keras

    try:
        return keras.models.load_model(file, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure to read a user's model file
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise CommandError(f"--model {path} could not be loaded as a Keras model ({reason}): save it with model.save('m.keras').") from None


def _check_model_and_inputs(model, inputs: np.ndarray, path: str) -> int:
    """The number of output units; CommandError when the inputs do not fit the model."""
    expected = getattr(model, "input_shape", None)
    outputs = getattr(model, "output_shape", None)
    if not isinstance(expected, tuple) or not isinstance(outputs, tuple) or isinstance(expected[0], tuple) or isinstance(outputs[0], tuple):
        raise CommandError(f"--model {path}: the command line takes a model with one input and one output; "
                           f"for others use camavg_tf.AveragesCam in Python (see docs/tensorflow.md).")
    if inputs.ndim != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], inputs.shape[1:])):
        raise CommandError(f"--inputs has shape {inputs.shape} but the model takes {tuple(expected)}: pass inputs "
                           f"shaped like the model's input, with the samples first.")
    return int(np.prod([d for d in outputs[1:] if d is not None])) if len(outputs) > 1 else 1


def run_evaluate(args: argparse.Namespace) -> int:
    from camavg_tf.app.output import check_out

    out = check_out(args.out)
    methods = _methods(args) if args.method else []
    inputs = load_inputs(args.inputs)
    targets = load_targets(args.targets, inputs.shape[0]) if args.targets else None
    cams = load_cams(args.cams, inputs.shape[0]) if args.cams else {}
    sources = {"inputs": f"--inputs {args.inputs}"} | {Path(path).stem: f"--cams {path}" for path in args.cams or ()}
    progress = Progress(2 + len(methods) + len(methods or cams), args.quiet)
    try:
        progress.step("importing TensorFlow and loading the model")
        model = _load_model(args.model)
        progress.done()
        n_units = _check_model_and_inputs(model, inputs, args.model)
        from camavg_tf.app.recipes import check_layer, make_cams, target_score

        if args.layer:
            check_layer(model, args.layer)
        if targets is None:
            targets = _top1_targets(model, inputs, args.batch_size)
        else:
            check_targets_in_range(targets, n_units, args.targets)
        recipes = _recipes(args, methods, args.layer)
        for method, recipe in recipes.items():
            progress.step(f"making {method} CAMs")
            cams[method] = make_cams(recipe, model, inputs, targets)
            sources[method] = f"--method {method}"
            progress.done()
        results = _evaluate(args, model, inputs, cams, target_score(model, targets), sources, progress,
                            batch_size=args.batch_size, activation=args.activation)
        descriptions = {m: r.describe() for m, r in recipes.items()}
        descriptions |= {Path(p).stem: f"from file {p}" + (", min-max per map by camavg (--normalize)" if args.normalize else "")
                         for p in args.cams or ()}
        rows = None
        if args.compare:
            from camavg_tf.app.conclusion import compare_pairs

            rows = compare_pairs(results[next(iter(results))].y_c, {m: r.o_c for m, r in results.items()},
                                 nan_policy=args.nan_policy, baseline=_baseline(args, results))
        _emit(args, out, results, descriptions, rows, None, inputs, cams,
              title=f"camavg: {Path(args.model).name} on {inputs.shape[0]} inputs", progress=progress)
    finally:
        progress.close()
    return 0


def _top1_targets(model, inputs: np.ndarray, batch_size: int | None) -> np.ndarray:
    outputs = np.asarray(model.predict(inputs, batch_size=batch_size or 32, verbose=0))
    if not np.isfinite(outputs).all():
        raise CommandError("--top1: the model gives NaN or infinite outputs on --inputs; check the inputs and the model.")
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        # One unit: a probability (or logit) of the positive class; top-1 is the likelier side.
        threshold = 0.5 if outputs.min() >= 0.0 and outputs.max() <= 1.0 else 0.0
        return (outputs[:, 0] > threshold).astype(np.int64)
    return outputs.reshape(outputs.shape[0], -1).argmax(axis=1).astype(np.int64)


def _baseline(args: argparse.Namespace, results: Mapping[str, Any]) -> str | None:
    """--baseline, checked against the methods of this run."""
    if args.baseline is None:
        return None
    if args.baseline not in results:
        raise CommandError(
            f"--baseline {args.baseline!r} is not one of this run's methods ({', '.join(results)}): "
            f"pass one of them."
        )
    return args.baseline


def _one_line(error: BaseException) -> str:
    """The message on one line, its Python advice turned into this command's options."""
    message = " ".join(str(error).split()) or type(error).__name__
    for python, option in (("normalize=True", "--normalize"), ("nan_policy='omit'", "--nan-policy omit"),
                           ("activation='softmax'", "--activation softmax"), ("activation='sigmoid'", "--activation sigmoid"),
                           ("activation='identity'", "--activation identity")):
        message = message.replace(python, option)
    if "logits" in message and "--activation" not in message:
        message += " On the command line: --activation softmax (or sigmoid)."
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status: 0, 2 after one ``camavg: error:`` line (bad
    input), 1 after one line for an internal error, 130 when interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        return run_demo(args) if args.command == "demo" else run_evaluate(args)
    except SystemExit as stop:  # --help, or argparse's own exit
        return int(stop.code or 0) if isinstance(stop.code, int) or stop.code is None else EXIT_USAGE
    except (CommandError, ValueError, TypeError) as error:
        if debug:
            raise
        print(f"camavg: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("camavg: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the last guard: one line, never a traceback
        if debug:
            raise
        print(f"camavg: internal error: {type(error).__name__}: {_one_line(error)[:300]} "
              f"(rerun with --debug for the traceback, and report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
