"""docs/command-line.md stays true: its Python recipe gives the command's numbers, its tables
and its error examples match what the command does."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

# Only the Python recipe needs TensorFlow; the help, the recipes' text and the messages do not.
from camavg_cli.cli import build_parser
from camavg_cli.loading import cam_shape_problem
from camavg_tf.app.recipes import CAM_METHODS, CLASS_NAMES, Recipe

# Keras' own model.save trips NumPy 2's __array__ deprecation inside Keras; not camavg's, not the user's.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

DOC = (Path(__file__).resolve().parents[1] / "docs" / "command-line.md").read_text()


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")
def test_the_python_recipe_gives_the_commands_number(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("tf_keras_vis")
    monkeypatch.setenv("CAMAVG_CACHE", str(tmp_path))
    (block,) = _python_blocks(DOC)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block, "docs/command-line.md", "exec"), namespace)  # noqa: S102 - our own docs
    # (Score-CAM's own predict progress bar comes first: tf-keras-vis prints it, not camavg.)
    assert printed.getvalue().splitlines()[-1].startswith("Average Drop ")

    # The command's path: its recipe object, its CAM maker, AveragesCam.
    from camavg_tf import AveragesCam
    from camavg_tf.app.recipes import make_cams, target_score

    model, data = namespace["model"], namespace["data"]
    cams = make_cams(Recipe("scorecam", "conv_last"), model, data.images, data.labels)
    expected = AveragesCam(model, data.images).evaluate(cams, target_score(model, data.labels))
    assert namespace["result"].average_drop == pytest.approx(expected.average_drop, abs=1e-4)


def test_recipe_table_and_help_name_the_same_classes():
    for method in CAM_METHODS:
        row = next(line for line in DOC.splitlines() if line.startswith(f"| `{method}` |"))
        assert f"`{CLASS_NAMES[method]}`" in row
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    help_text = " ".join(evaluate.format_help().split())
    for method in CAM_METHODS:
        assert " ".join(Recipe(method, "LAYER").describe().split()) in help_text


def test_documented_channel_axis_message_is_the_commands():
    problem = cam_shape_problem((200, 64, 64, 3), 200)
    assert f"camavg: error: --cams cams.npy: {problem}." in DOC


def test_every_option_in_the_table_exists():
    evaluate = build_parser()._subparsers._group_actions[0].choices["evaluate"]
    known = {option for action in evaluate._actions for option in action.option_strings}
    table = [line for line in DOC.splitlines() if line.startswith("| `--")]
    for line in table:
        for option in re.findall(r"`(--[a-z0-9-]+)", line.split("|")[1]):
            assert option in known, option


def test_documented_out_message_is_the_commands(tmp_path, monkeypatch):
    from camavg_cli.loading import CommandError
    from camavg_cli.output import check_out

    monkeypatch.chdir(tmp_path)
    (tmp_path / "prev" / "report.png").mkdir(parents=True)
    with pytest.raises(CommandError) as refused:
        check_out("prev", ["results.json", "report.png"])
    assert f"camavg: error: {refused.value}\n" in DOC
