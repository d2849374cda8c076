"""``python -m gsbench.report RESULTS_ROOT [--out DIR] [--anchor METHOD] [--experiment YAML ...]``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
