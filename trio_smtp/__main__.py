"""Entry point for ``python -m trio_smtp``."""

import sys

from ._cli import main

sys.exit(main())
