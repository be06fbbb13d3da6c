"""``python -m infersight.processor [flags]``: the same as ``infersight processor [flags]``."""

import sys

from infersight.processor.cli import main

sys.exit(main())
