"""The ``camavg`` command: ``camavg demo`` and ``camavg evaluate``.

``camavg demo`` trains (once, then cached) a small CNN on seeded synthetic images whose object
location is known, makes CAMs with tf-keras-vis and reference maps, reports their Average Drop,
Average Increase, Average Gain, Deletion and Insertion, and says in words what the numbers mean.
``camavg evaluate`` gives the same report for a saved Keras model and the user's own data.

Everything that touches a model goes through the :class:`~camavg_cli.frameworks.Framework` that
``--framework`` names (default ``tf``: Keras models and tf-keras-vis, from :mod:`camavg_tf.app`);
importing this module imports no framework.

Both print one table (or JSON / CSV with ``--format``) and write ``results.json``,
``results.csv`` and ``report.png`` into ``--out``, replacing only files that camavg wrote there
(see :mod:`camavg_cli.output`).
A bad input prints one line, ``camavg: error: <message>``, and exits with status 2; an internal
failure prints one line and exits with status 1 (``--debug`` shows its traceback).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from camavg_core import validation
from camavg_core.imputation import outside_default_noise_range
from camavg_core.metrics import METRICS, resolve_metrics, road_metric
from camavg_core.state import on_common_samples
from camavg_cli.frameworks import DEFAULT_FRAMEWORK, FRAMEWORKS, Framework, get_framework
from camavg_cli.loading import CommandError, check_targets_in_range, load_cams, load_inputs, load_targets
from camavg_cli.progress import Progress

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


def _recipes_epilog(framework: Framework) -> str:
    lines = [f"  {method:<10} {framework.recipe(method, 'LAYER').describe()}" for method in framework.cam_methods]
    return ("how --method makes each CAM (LAYER is --layer; change the recipe with --no-replace-to-linear\n"
            "and --scorecam-max-n; docs/command-line.md shows the same calls in Python):\n" + "\n".join(lines))


def _framework_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--framework", choices=tuple(FRAMEWORKS), default=DEFAULT_FRAMEWORK,
                        help=f"the framework of the model and the CAM recipes (default {DEFAULT_FRAMEWORK})")


def build_parser(framework: Framework | None = None) -> argparse.ArgumentParser:
    """The command's parser; its help names ``framework``'s recipes (default: ``--framework tf``)."""
    framework = framework or get_framework()
    common = _Parser(add_help=False)
    _framework_option(common)
    common.add_argument("--out", default="camavg-report", metavar="DIR",
                        help="folder for results.json, results.csv and report.png (new or existing, . too); "
                        "camavg replaces only files it wrote there (default: ./camavg-report)")
    common.add_argument("--format", choices=FORMATS, default="table",
                        help="what to print: an aligned table (default), JSON or CSV")
    common.add_argument("--quiet", action="store_true", help="no progress bar and no notes on standard error")
    common.add_argument("--compare", action="store_true",
                        help="also compare every pair of methods (paired test, interval, Holm-adjusted p-value) "
                        "and say in words what the comparison shows (conclusion.txt)")
    common.add_argument("--baseline", metavar="NAME",
                        help="with --compare: compare each method against NAME instead of every pair")
    common.add_argument("--margin", type=float, default=None, metavar="M",
                        help="with --compare and in the conclusion: call a method better only when the "
                        "difference is significant and its interval lies beyond M in the metric's unit "
                        "(default: each metric's own, 0.5 percentage points for the averages, 0.005 for "
                        "Deletion, Insertion, MuFidelity and ROAD)")
    common.add_argument("--metrics", type=_metric_names, default=None, metavar="M1,M2",
                        help=f"the metrics to measure, comma-separated, from {', '.join(METRICS)} (default: the three "
                        "averages; the demo's: the averages, deletion and insertion)")
    common.add_argument("--road-noise", type=_noise, default=None, metavar="SIGMA",
                        help="with --metrics road: the standard deviation of ROAD's noise, in the units of the "
                        "inputs (default 0.01, for inputs in [0, 1]: needed for inputs outside it, 2.55 for "
                        "[0, 255] pixels)")
    common.add_argument("--no-plot", action="store_true", help="skip report.png (no matplotlib needed)")
    common.add_argument("--nan-policy", choices=("raise", "omit"), default="raise",
                        help="non-finite inputs, CAMs or scores: stop with an error (default), or skip "
                        "those samples and count them in the table's 'skipped' column")
    common.add_argument("--normalize", action="store_true",
                        help="min-max scale each CAM to [0, 1] before masking (for maps outside [0, 1])")
    common.add_argument("--no-replace-to-linear", dest="replace_to_linear", action="store_false",
                        help=f"make CAMs on the model's own output instead of {framework.cam_library}' ReplaceToLinear "
                        "(pre-softmax) copy of it")
    # no default here: whether it was given is checked (_check_option_pairs), then its default is set
    common.add_argument("--scorecam-max-n", type=_max_n, default=argparse.SUPPRESS, metavar="K|all",
                        help=f"Score-CAM's max_N: channels it keeps (default {framework.scorecam_max_n}; 'all' keeps every channel)")
    common.add_argument("--debug", action="store_true", help="show the traceback of an internal error")

    parser = _Parser(prog="camavg", description="How faithful class activation maps are to the model: Average Drop, Increase and Gain, Deletion, Insertion, MuFidelity and ROAD, with paired comparisons between methods.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,evaluate}", parser_class=_Parser)
    demo = commands.add_parser("demo", parents=[common], help="the built-in demo on synthetic images",
                               description="Train (once, cached) a small CNN on synthetic images with known "
                               "object masks; compare Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM and reference "
                               "maps on the three averages, Deletion and Insertion (or the --metrics named), and say what the numbers mean.",
                               epilog=_recipes_epilog(framework).replace("LAYER is --layer", "LAYER is conv_last"),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    demo.add_argument("--n-images", type=_positive_int, default=128, metavar="N", help="evaluation images (default 128)")

    evaluate = commands.add_parser("evaluate", parents=[common], help=f"evaluate CAMs of a saved {framework.model_kind}",
                                   description=f"Evaluate CAMs of a saved {framework.model_kind} on your own inputs.",
                                   epilog=_recipes_epilog(framework), formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--model", required=True, metavar=f"M{framework.model_suffix}", help=f"a saved {framework.model_kind}")
    evaluate.add_argument("--inputs", required=True, metavar="X.npy|X.npz",
                          help="(N, H, W, C) inputs; an .npz with one array or an array named inputs, x or images")
    targets = evaluate.add_mutually_exclusive_group(required=True)
    targets.add_argument("--targets", metavar="y.npy", help="(N,) integer target class (0 to K-1) of each input")
    targets.add_argument("--top1", action="store_true", help="target the model's top-1 class on each input")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--cams", nargs="+", metavar="C.npy", help="(N, H, W) CAMs in [0, 1]; the method name is the file's stem")
    source.add_argument("--method", metavar="M1,M2",
                        help=f"make CAMs with {framework.cam_library}, comma-separated: {','.join(framework.cam_methods)} (recipes below)")
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


def _recipes(args: argparse.Namespace, framework: Framework, methods: Sequence[str], layer: str | None) -> dict:
    return {method: framework.recipe(method, layer, args.replace_to_linear, args.scorecam_max_n) for method in methods}


def _noise(text: str) -> float:
    """``--road-noise 2.55``: a finite number, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a number, 0 or more (the noise's standard deviation)")
    return value


def _chosen_metrics(args: argparse.Namespace, metrics: tuple[str, ...] | None, inputs: np.ndarray, where: str) -> Any:
    """The --metrics names as measured: ``road`` with --road-noise where it was given. ROAD's
    default noise (0.01) is in the units of [0, 1] pixels, so inputs outside [0, 1] need
    --road-noise: their noise would otherwise be far from the original's (0.01 of 255 for
    [0, 255] pixels), silently."""
    if metrics is None or "road" not in metrics:
        return metrics
    if args.road_noise is not None:
        return [road_metric(noise=args.road_noise) if name == "road" else name for name in metrics]
    low, high = float(np.nanmin(inputs)), float(np.nanmax(inputs))
    if outside_default_noise_range(low, high):
        raise CommandError(
            f"{where} span [{low:g}, {high:g}], and ROAD's noise defaults to 0.01, the original's for inputs "
            f"in [0, 1]: pass --road-noise in the inputs' units (2.55 for [0, 255] pixels; for normalised "
            f"inputs, 0.01 divided by the normalisation's standard deviation), or --road-noise 0.01 to keep it.")
    return metrics


def _metric_names(text: str) -> tuple[str, ...]:
    """``--metrics average_drop,average_gain``: names of camavg's metric descriptions."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in METRICS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(METRICS)}, comma-separated")
    return names


def _evaluate(args, framework, model, inputs, cams, score, sources, progress, *, batch_size=None, activation=None,
              measured=None):
    try:
        metrics = framework.averages_cam(model, inputs, batch_size=batch_size, activation=activation,
                                         nan_policy=args.nan_policy, normalize=args.normalize)
    except (ValueError, TypeError) as error:
        raise _in_context(sources.get("inputs", "--inputs"), error) from None
    results = {}
    for method, cam_set in cams.items():
        progress.step(f"evaluating {method}")
        try:
            # a framework's evaluate_many takes the metrics when asked for some (the default: all three)
            results[method] = (metrics.evaluate_many([cam_set], score) if measured is None
                               else metrics.evaluate_many([cam_set], score, list(measured)))[0]
        except (ValueError, TypeError) as error:
            raise _in_context(sources.get(method, method), error) from None
        progress.done()
    return results


def _emit(args, out, results, recipes, rows, conclusion, images, cams, title, progress: Progress, metrics=None) -> None:
    """Write the --out folder (under the progress bar, the picture takes a second), then print."""
    import io

    from camavg_cli import report
    from camavg_cli.output import write_outputs

    notes = []
    progress.step("writing results" + ("" if args.no_plot else " and report.png"))
    files = report.text_outputs(results, recipes, rows, conclusion, metrics)
    if not args.no_plot and np.ndim(images) != 4:
        notes.append(f"camavg: note: report.png shows (N, H, W, C) images; inputs of shape {np.shape(images)} are not drawn.")
    elif not args.no_plot:
        try:
            picture = io.BytesIO()
            report.plot_report(picture, results, images, cams, title=title, metrics=metrics)
            files["report.png"] = picture.getvalue()
        except ImportError:
            notes.append("camavg: note: matplotlib is not installed, so report.png was not drawn (pip install matplotlib).")
    written = write_outputs(out, args.out, files)
    progress.done()
    progress.close()
    if args.format == "json":
        records = report.result_records(results, recipes, metrics)
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


def run_demo(args: argparse.Namespace, framework: Framework) -> int:
    from camavg_cli.conclusion import compare_pairs, conclusion
    from camavg_cli.output import check_out

    demo = framework.demo
    if demo is None:
        raise CommandError(f"--framework {args.framework} has no demo: run camavg demo with --framework {DEFAULT_FRAMEWORK}.")
    if args.n_images < 2:
        raise CommandError(f"--n-images must be at least 2, got {args.n_images}.")
    started = time.perf_counter()
    recipes = demo.demo_recipes(replace_to_linear=args.replace_to_linear, scorecam_max_n=args.scorecam_max_n)
    _check_compare(args, [*recipes, *demo.REFERENCE_MAPS])
    # The demo always writes its comparisons of the CAM methods and its conclusion.
    out = check_out(args.out, _output_names(args, comparisons=True))
    progress = Progress(3 + 2 * len(recipes) + len(demo.REFERENCE_MAPS), args.quiet)
    try:
        progress.step(f"importing {framework.name}")
        _import_frameworks(framework)
        progress.done()
        progress.step("loading or training the demo model")
        model, trained = demo.load_or_train()
        progress.done()
        data = demo.demo_data(args.n_images)
        cams = {}
        for method, recipe in recipes.items():
            progress.step(f"making {method} CAMs")
            cams[method] = framework.make_cams(recipe, model, data.images, data.labels)
            progress.done()
        cams.update(demo.reference_maps(data.masks))
        metrics = _chosen_metrics(args, args.metrics, data.images, "the demo's images") or demo.demo_metrics()
        results = _evaluate(args, framework, model, data.images, cams, framework.target_score(model, data.labels), {},
                            progress, measured=metrics)
        descriptions = {method: recipe.describe() for method, recipe in recipes.items()} | dict(demo.REFERENCE_RECIPES)
        results = on_common_samples(results, resolve_metrics(metrics))  # what the comparisons pair
        # The conclusion compares the CAM methods only; --compare adds every pair, references included.
        cam_results = {method: results[method] for method in recipes}
        rows = compare_pairs(results[next(iter(recipes))].y_c, {m: r.o_c for m, r in cam_results.items()},
                             nan_policy=args.nan_policy, margin=args.margin, metrics=metrics, results=cam_results)
        text = conclusion(results, rows, demo.REFERENCE_RECIPES)
        if args.compare:
            rows = compare_pairs(results[next(iter(results))].y_c, {m: r.o_c for m, r in results.items()},
                                 nan_policy=args.nan_policy, baseline=args.baseline, margin=args.margin,
                                 metrics=metrics, results=results)
        _emit(args, out, results, descriptions, rows, text, data.images, cams,
              title=f"camavg demo: {args.n_images} synthetic images, a CNN trained to tell the blob's colour",
              progress=progress, metrics=metrics)
    finally:
        progress.close()
    _note(args, f"demo {'trained and cached the model' if trained else 'used the cached model'}; "
                f"{time.perf_counter() - started:.1f} s")
    return 0


def _methods(args: argparse.Namespace, framework: Framework) -> list[str]:
    methods = [name.strip() for name in args.method.split(",") if name.strip()]
    unknown = [name for name in methods if name not in framework.cam_methods]
    if unknown or not methods:
        raise CommandError(f"--method {args.method!r}: choose from {','.join(framework.cam_methods)} "
                           f"({', '.join(framework.cam_classes.values())}).")
    if not args.layer:
        raise CommandError("--method needs --layer NAME, the penultimate (conv) layer to take the CAMs at.")
    return list(dict.fromkeys(methods))


def _import_frameworks(framework: Framework) -> None:
    """The framework and its CAM library, quietly; CommandError with the install line if missing."""
    try:
        framework.import_framework()
    except ModuleNotFoundError as error:
        raise CommandError(f"{error.name} is not installed, and camavg's command needs it: {framework.install}.") from None


def _load_model(framework: Framework, path: str):
    from camavg_cli.loading import existing_file

    file = existing_file(path, "--model")
    _import_frameworks(framework)
    return framework.load_model(file, path)


def run_evaluate(args: argparse.Namespace, framework: Framework) -> int:
    from camavg_cli.output import check_out

    methods = _methods(args, framework) if args.method else []
    _check_compare(args, [*(Path(path).stem for path in args.cams or ()), *methods])
    out = check_out(args.out, _output_names(args, comparisons=args.compare))
    inputs = load_inputs(args.inputs)
    metrics = _chosen_metrics(args, args.metrics, inputs, f"--inputs {args.inputs}")
    targets = load_targets(args.targets, inputs.shape[0]) if args.targets else None
    cams = load_cams(args.cams, inputs.shape[0]) if args.cams else {}
    sources = {"inputs": f"--inputs {args.inputs}"} | {Path(path).stem: f"--cams {path}" for path in args.cams or ()}
    progress = Progress(2 + len(methods) + len(methods or cams), args.quiet)
    try:
        progress.step(f"importing {framework.name} and loading the model")
        model = _load_model(framework, args.model)
        progress.done()
        n_units = framework.check_model_and_inputs(model, inputs, args.model)
        if args.layer:
            framework.check_layer(model, args.layer)
        if targets is None:
            targets = _top1_targets(framework, model, inputs, args.batch_size, args.activation)
        else:
            check_targets_in_range(targets, n_units, args.targets)
        recipes = _recipes(args, framework, methods, args.layer)
        for method, recipe in recipes.items():
            progress.step(f"making {method} CAMs")
            cams[method] = framework.make_cams(recipe, model, inputs, targets)
            sources[method] = f"--method {method}"
            progress.done()
        results = _evaluate(args, framework, model, inputs, cams, framework.target_score(model, targets), sources, progress,
                            batch_size=args.batch_size, activation=args.activation, measured=metrics)
        descriptions = {m: r.describe() for m, r in recipes.items()}
        descriptions |= {Path(p).stem: f"from file {p}" + (", min-max per map by camavg (--normalize)" if args.normalize else "")
                         for p in args.cams or ()}
        rows, text = None, None
        if args.compare:
            from camavg_cli.conclusion import compare_pairs, conclusion

            results = on_common_samples(results, resolve_metrics(metrics))  # what the comparisons pair
            rows = compare_pairs(results[next(iter(results))].y_c, {m: r.o_c for m, r in results.items()},
                                 nan_policy=args.nan_policy, baseline=args.baseline, margin=args.margin,
                                 metrics=metrics, results=results)
            text = conclusion(results, rows, {})
        _emit(args, out, results, descriptions, rows, text, inputs, cams,
              title=f"camavg: {Path(args.model).name} on {inputs.shape[0]} inputs", progress=progress,
              metrics=metrics)
    finally:
        progress.close()
    return 0


def _top1_targets(framework: Framework, model, inputs: np.ndarray, batch_size: int | None,
                  activation: str | None = None) -> np.ndarray:
    outputs = np.asarray(framework.predict(model, inputs, batch_size or 32))
    if not np.isfinite(outputs).all():
        raise CommandError("--top1: the model gives NaN or infinite outputs on --inputs; check the inputs and the model.")
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        # One unit: a probability (or logit) of the positive class; top-1 is the likelier side.
        # --activation sigmoid says the outputs are logits, whose middle is 0 even where every
        # logit happens to lie in [0, 1] (all of them class 1, not class 0)
        logits = activation == "sigmoid" or outputs.min() < 0.0 or outputs.max() > 1.0
        return (outputs[:, 0] > (0.0 if logits else 0.5)).astype(np.int64)
    return outputs.reshape(outputs.shape[0], -1).argmax(axis=1).astype(np.int64)


def _check_compare(args: argparse.Namespace, methods: Sequence[str]) -> None:
    """--compare and --baseline against the method names of this run, before any work."""
    if args.compare and len(methods) < 2:
        raise CommandError(
            f"--compare compares methods with each other, and this run has one ({', '.join(methods)}): "
            f"pass two or more --cams files or --method names, or leave --compare out."
        )
    if args.baseline is not None and args.baseline not in methods:
        raise CommandError(
            f"--baseline {args.baseline!r} is not one of this run's methods ({', '.join(methods)}): "
            f"pass one of them."
        )


#: options that change nothing without another: (option, its attribute in the parsed arguments,
#: the option it needs, what it does, the commands where it needs it). The demo makes its own
#: CAMs and always writes its conclusion, so there only --baseline needs --compare.
_OPTION_PAIRS = (
    ("--baseline", "baseline", "--compare", "picks the method each other method is compared against", ("demo", "evaluate")),
    ("--margin", "margin", "--compare", "decides when a comparison calls a method better", ("evaluate",)),
    ("--layer", "layer", "--method", "names the layer --method takes its CAMs at", ("evaluate",)),
    ("--no-replace-to-linear", "replace_to_linear", "--method", "changes how --method makes its CAMs", ("evaluate",)),
    ("--scorecam-max-n", "scorecam_max_n", "--method", "sets the Score-CAM recipe of --method", ("evaluate",)),
    ("--road-noise", "road_noise", "--metrics road", "sets ROAD's noise", ("demo", "evaluate")),
)
#: the value of each attribute above when its option was not given
_NOT_GIVEN = {"baseline": None, "margin": None, "layer": None, "replace_to_linear": True, "road_noise": None}


def _check_option_pairs(args: argparse.Namespace, framework: Framework) -> None:
    """An option given without the option it works with is refused, before any work (it would
    be ignored without a word); then --scorecam-max-n gets its default when not given."""
    needed_given = {"--compare": args.compare, "--method": getattr(args, "method", None) is not None,
                    "--metrics road": "road" in (args.metrics or ())}
    for option, attribute, needed, effect, commands in _OPTION_PAIRS:
        given = (hasattr(args, attribute) if attribute not in _NOT_GIVEN
                 else getattr(args, attribute, _NOT_GIVEN[attribute]) != _NOT_GIVEN[attribute])
        if args.command in commands and given and not needed_given[needed]:
            raise CommandError(validation.option_needs_another(option, needed, effect))
    if not hasattr(args, "scorecam_max_n"):
        args.scorecam_max_n = framework.scorecam_max_n


def _output_names(args: argparse.Namespace, *, comparisons: bool) -> list[str]:
    """The files a run may write into --out, checked before any work."""
    names = ["results.json", "results.csv"]
    names += ["comparisons.json", "comparisons.csv", "conclusion.txt"] if comparisons else []
    return names + ([] if args.no_plot else ["report.png"])


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


def _framework_name(argv: Sequence[str]) -> str:
    """``--framework`` read ahead of the full parser, whose help shows that framework's recipes."""
    ahead = _Parser(prog="camavg", add_help=False)
    _framework_option(ahead)
    return ahead.parse_known_args(argv)[0].framework


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status: 0, 2 after one ``camavg: error:`` line (bad
    input), 1 after one line for an internal error, 130 when interrupted."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        framework = get_framework(_framework_name(argv))
        args = build_parser(framework).parse_args(argv)
        _check_option_pairs(args, framework)
        with warnings.catch_warnings():
            if getattr(args, "road_noise", None) is not None:  # chosen for these inputs: no warning
                warnings.simplefilter("ignore", validation.RoadNoiseWarning)
            return run_demo(args, framework) if args.command == "demo" else run_evaluate(args, framework)
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
