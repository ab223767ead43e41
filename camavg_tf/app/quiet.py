"""Import TensorFlow without its start-up log lines, and nothing else hidden.

TensorFlow 2.21 writes absl, oneDNN, CPU-feature and CUDA-probing lines to file descriptor 2
while it is imported and while it looks for devices, even at ``TF_CPP_MIN_LOG_LEVEL=3``: they come
from C++ before TensorFlow reads the variable. :func:`import_tensorflow` runs those two steps
with file descriptor 2 drawn through a pipe, drops the lines it knows (listed in
:data:`KNOWN_LINES`, each with its severity) whose severity is below the log level in force,
and passes every other byte on unchanged, in order.

The level in force is the user's own ``TF_CPP_MIN_LOG_LEVEL`` when set (``0`` shows everything);
when it is unset, camavg sets ``2`` (errors only, TensorFlow's own meaning) for the rest of the
run and drops all the known start-up lines, which on a machine without a GPU are not errors of
the user's.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from typing import Iterator

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
DEFAULT_LEVEL = "2"
# A known line is dropped when its severity is below the level in force. Severities follow
# TF_CPP_MIN_LOG_LEVEL: 0 info, 1 warning, 2 error. With the variable unset, every known line
# is dropped (level 3): they are start-up notices about this machine, not about the user's data.
KNOWN_LINES: tuple[tuple[int, re.Pattern[bytes]], ...] = tuple(
    (severity, re.compile(pattern))
    for severity, pattern in (
        (1, rb"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
        (0, rb"^I\d{4} [\d:.]+ +\d+ port\.cc:\d+\] oneDNN custom operations are on\."),
        (0, rb"^I\d{4} [\d:.]+ +\d+ cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"),
        (0, rb"^I\d{4} [\d:.]+ +\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"),
        (0, rb"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\.$"),
        (2, rb"^E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit"),
        (2, rb"^E\d{4} [\d:.]+ +\d+ cuda_(fft|dnn|blas)\.cc:\d+\] Unable to register cu(FFT|DNN|BLAS) factory"),
        (1, rb"^W\d{4} [\d:.]+ +\d+ computation_placer\.cc:\d+\] computation placer already registered"),
    )
)


def level_in_force() -> int:
    """The user's ``TF_CPP_MIN_LOG_LEVEL`` as an int, or 3 (drop every known line) when unset."""
    value = os.environ.get(LEVEL_VARIABLE)
    if value is None:
        return 3
    try:
        return int(value)
    except ValueError:  # TensorFlow reads an unparsable value as 0: show everything
        return 0


def is_known_line(line: bytes, level: int) -> bool:
    """Whether ``line`` (without its newline) is a known start-up line below ``level``.

    >>> is_known_line(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", 3)
    True
    >>> is_known_line(b"Traceback (most recent call last):", 3)
    False
    """
    return any(severity < level and pattern.search(line) for severity, pattern in KNOWN_LINES)


def filter_lines(data: bytes, level: int) -> bytes:
    """``data`` without its known lines below ``level``; every other byte kept, in order.

    >>> filter_lines(b"keep me\\nWARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n", 3)
    b'keep me\\n'
    """
    lines = data.split(b"\n")
    kept = [line for line in lines[:-1] if not is_known_line(line.rstrip(b"\r"), level)]
    # The last piece has no newline of its own: keep it as it came.
    return b"".join(line + b"\n" for line in kept) + lines[-1]


@contextlib.contextmanager
def filtered_stderr(level: int) -> Iterator[None]:
    """Within the block, file descriptor 2 goes through :func:`filter_lines` at ``level``.

    Lines are passed on as they complete, so a crash inside the block still shows what came
    before it. Where descriptor 2 cannot be redirected (closed, or not a real descriptor), the
    block runs unfiltered.
    """
    if level <= 0:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        pending = b""
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            # A progress bar redraws with a carriage return and no newline: pass it on at once.
            cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
            if cut:
                _write_all(saved, filter_lines(pending[:cut], level))
                pending = pending[cut:]
        if pending:
            _write_all(saved, filter_lines(pending, level))

    thread = threading.Thread(target=pump, name="camavg-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        # Putting the saved descriptor back closes the pipe's last write end: the pump sees the
        # end of the stream, passes on what is left, and stops.
        os.dup2(saved, 2)
        thread.join()
        os.close(read_end)
        os.close(saved)


def _write_all(descriptor: int, data: bytes) -> None:
    while data:
        written = os.write(descriptor, data)
        data = data[written:]


def import_tensorflow():
    """Import TensorFlow, Keras and tf-keras-vis (when installed) and probe devices, quietly.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` when the user has not set it. Python warnings raised by
    these imports (deprecations inside the frameworks) are not about the user's input and are
    dropped too; warnings raised later are left alone.

    Returns:
        The ``tensorflow`` module.
    """
    level = level_in_force()
    os.environ.setdefault(LEVEL_VARIABLE, DEFAULT_LEVEL)
    already = "tensorflow" in sys.modules
    with filtered_stderr(level if not already else 0), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import keras  # noqa: F401
        import tensorflow as tf

        with contextlib.suppress(ImportError):
            import tf_keras_vis  # noqa: F401
        # Looking for a GPU is what prints CUDA's cuInit line on a machine without one.
        tf.config.list_physical_devices("GPU")
    return tf
