"""``python -m camavg_tf.app``: the ``camavg`` command."""

import sys

from camavg_tf.app.cli import main

sys.exit(main())
