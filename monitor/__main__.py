"""``python -m monitor`` is the ``hallmonitor`` CLI."""

import sys

from monitor.cli import main

sys.exit(main())
