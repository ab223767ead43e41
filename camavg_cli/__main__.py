"""``python -m camavg_cli``: the ``camavg`` command."""

import sys

from camavg_cli.cli import main

sys.exit(main())
