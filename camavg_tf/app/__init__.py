"""The ``camavg`` command line, its demo and its report, apart from the TensorFlow adapter.

- :mod:`camavg_tf.app.cli`: ``camavg demo`` and ``camavg evaluate`` (``main(argv)``).
- :mod:`camavg_tf.app.demo`: the demo's model, data, cache and reference maps.
- :mod:`camavg_tf.app.recipes`: how each ``--method`` makes its CAMs with tf-keras-vis.
- :mod:`camavg_tf.app.loading`: the checked ``.npy``/``.npz`` readers.
- :mod:`camavg_tf.app.output`: the ``--out`` folder, written whole; escaped CSV.
- :mod:`camavg_tf.app.report`: the table, JSON, CSV and ``report.png``.
- :mod:`camavg_tf.app.conclusion`: paired comparisons and the demo's conclusion in words.
- :mod:`camavg_tf.app.quiet`: TensorFlow imported without its start-up log lines.

Importing this package imports neither TensorFlow nor matplotlib.
"""
