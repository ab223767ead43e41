"""The ``camavg`` command line, its report and its output folder, apart from every framework.

- :mod:`camavg_cli.cli`: ``camavg demo`` and ``camavg evaluate`` (``main(argv)``).
- :mod:`camavg_cli.loading`: the checked ``.npy``/``.npz`` readers.
- :mod:`camavg_cli.output`: the ``--out`` folder, written whole; escaped CSV.
- :mod:`camavg_cli.report`: the table, JSON, CSV and ``report.png``.
- :mod:`camavg_cli.conclusion`: paired comparisons and the demo's conclusion in words.
- :mod:`camavg_cli.progress`: the progress line on standard error.
- :mod:`camavg_cli.synthetic`: the demo's seeded synthetic images (NumPy only).

Importing this package imports neither a deep-learning framework nor matplotlib.
"""
