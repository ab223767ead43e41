"""What the ``camavg`` command line (:mod:`camavg_cli`) needs from TensorFlow and Keras.

- :mod:`camavg_tf.app.framework`: ``FRAMEWORK``, what ``camavg --framework tf`` runs on.
- :mod:`camavg_tf.app.demo`: the demo's model, data, cache and reference maps.
- :mod:`camavg_tf.app.recipes`: how each ``--method`` makes its CAMs with tf-keras-vis.
- :mod:`camavg_tf.app.quiet`: TensorFlow imported without its start-up log lines.

Importing this package imports neither TensorFlow nor matplotlib.
"""
