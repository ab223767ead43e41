"""The README and the guides in docs/ cannot go stale: their examples run and their links resolve.

Examples. Every block fenced ```python (or ```py) in README.md and in each docs/*.md runs, one
test per file: the blocks of a file run in order in one namespace, in a fresh interpreter whose
working directory is a temporary folder, importing this checkout's packages. An example that
raises fails its file's test, and the traceback names the Markdown file and line.

A block that cannot run on this machine (it needs a GPU, several hosts, your own files) is fenced
```python no-run: <why>, and the reason is required, so that skipping stays rare and visible.

Links. Every relative link in those files must point to an existing file, and every guide in
docs/ is listed in docs/index.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RUNS = {"python", "py"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>```+)(?P<info>.*)$")
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Frameworks an example may need; without one installed, that file's examples are skipped.
OPTIONAL = ("tensorflow", "keras", "tf_keras_vis", "jax", "flax", "matplotlib", "scipy", "torch")

# Runs in the child: each block is compiled under the Markdown file's name, padded with blank
# lines so that a traceback gives the line in the Markdown file.
RUNNER = """
import json, sys
namespace = {"__name__": "__main__"}
for path, line, code in json.load(sys.stdin):
    exec(compile("\\n" * (line - 1) + code, path, "exec"), namespace)
"""


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fenced_blocks(text: str) -> list[tuple[str, int, int, str]]:
    """(info string, first line of the code, line of the closing fence, code) of every fenced block.

    Lines count from 1. An indented fence (in a list item) has its indentation removed from the code.
    """
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        index += 1
        if not opening:
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        start, body = index + 1, []
        while index < len(lines) and not lines[index].strip().startswith(ticks):
            line = lines[index]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1  # past the closing fence
        blocks.append((opening["info"].strip(), start, index, "\n".join(body) + "\n"))
    return blocks


def examples(text: str) -> list[tuple[int, str]]:
    """(first line, code) of the blocks to run; refuses a no-run fence that gives no reason."""
    runnable = []
    for info, line, _, code in fenced_blocks(text):
        words = info.split(maxsplit=1)
        if not words or words[0] not in RUNS:
            continue
        if len(words) == 2 and words[1].startswith("no-run"):
            reason = words[1][len("no-run") :].lstrip(" :")
            if not reason:
                raise ValueError(f"the block at line {line} is fenced 'no-run' without a reason; "
                                 "write ```python no-run: <why it cannot run here>")
            continue
        runnable.append((line, code))
    return runnable


def run_examples(path: Path, workdir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a Markdown file's examples in order, in one namespace, in a fresh interpreter."""
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    payload = json.dumps([(name, line, code) for line, code in examples(path.read_text())])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
        "CAMAVG_CACHE": str(workdir / "cache"),
        "MPLBACKEND": "Agg",
    }
    return subprocess.run([sys.executable, "-c", RUNNER], input=payload, capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=workdir)


def relative_links(text: str) -> list[str]:
    """Link targets outside code that are neither web addresses nor anchors."""
    lines = text.splitlines()
    for _, start, end, _ in fenced_blocks(text):
        lines[start - 2 : end] = [""] * (end - start + 2)
    prose = re.sub(r"`[^`\n]*`", "", "\n".join(lines))
    targets = [match["target"].strip("<>") for match in LINK.finditer(prose)]
    return [t for t in targets if not re.match(r"^([a-z][a-z0-9+.-]*:|#)", t, flags=re.IGNORECASE)]


def broken_links(path: Path) -> list[str]:
    targets = relative_links(path.read_text())
    return [t for t in targets if not (path.parent / t.split("#")[0]).resolve().exists()]


@pytest.mark.slow
@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(path, tmp_path):
    code = "\n".join(code for _, code in examples(path.read_text()))
    if not code:
        return  # a page of prose only: nothing to run, its links are checked below
    for module in sorted(set(re.findall(r"^\s*(?:from|import) (\w+)", code, flags=re.MULTILINE))):
        if module in OPTIONAL:
            pytest.importorskip(module)
    completed = run_examples(path, tmp_path)
    exit_status = completed.returncode
    assert exit_status == 0, completed.stderr[-4000:]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files(path):
    assert broken_links(path) == []


def test_the_readme_has_an_example():
    assert examples((ROOT / "README.md").read_text())


def test_every_guide_is_listed_in_the_index():
    guides = sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md")
    listed = {target.split("#")[0] for target in relative_links((ROOT / "docs" / "index.md").read_text())}
    assert len(guides) >= 10  # the ten guides the README's table links
    assert [guide for guide in guides if guide not in listed] == []


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 150


# The checks themselves, on small Markdown files written here.


def test_an_example_that_raises_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Intro.\n\n```python\nx = 1\n```\n\nText.\n\n```python\nassert x == 2, 'x is 1'\n```\n")
    completed = run_examples(page, tmp_path)
    assert completed.returncode != 0
    assert "x is 1" in completed.stderr
    assert "line 10" in completed.stderr  # the Markdown line of the failing assert


def test_blocks_share_one_namespace_and_run_in_order(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nx = [1]\n```\n\n```python\nx.append(2)\nprint(x)\n```\n")
    completed = run_examples(page, tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[1, 2]"


def test_no_run_blocks_and_other_languages_are_not_run(tmp_path):
    text = ("```python no-run: needs a GPU\nraise SystemExit(3)\n```\n"
            "```bash\nexit 3\n```\n```text\nraise\n```\n```py\ny = 2\n```\n")
    assert examples(text) == [(11, "y = 2\n")]


def test_no_run_needs_a_reason():
    with pytest.raises(ValueError, match="without a reason"):
        examples("```python no-run\nx = 1\n```\n")


def test_indented_blocks_are_dedented(tmp_path):
    text = "- a step:\n\n  ```python\n  if True:\n      z = 1\n  ```\n"
    assert examples(text) == [(4, "if True:\n    z = 1\n")]


def test_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("x")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/there.md) [anchor](docs/there.md#part) [web](https://example.org) [top](#x)\n"
        "[missing](docs/gone.md) [later](docs/later.md#part) `[code](docs/nope.md)`\n"
        "```text\n[block](docs/nope.md)\n```\n"
    )
    assert broken_links(page) == ["docs/gone.md", "docs/later.md#part"]
