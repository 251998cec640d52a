"""``python -m dlopt_core``: everything the pages do, without a browser."""

import sys

from dlopt_core.cli import main

sys.exit(main())
