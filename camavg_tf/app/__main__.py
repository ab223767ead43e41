"""``python -m camavg_tf.app``: the ``camavg`` command (kept for old scripts; ``python -m camavg_cli``)."""

import sys

from camavg_cli.cli import main

sys.exit(main())
