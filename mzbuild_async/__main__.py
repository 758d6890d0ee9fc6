"""``python -m mzbuild_async``."""

import sys

from .cli import main

sys.exit(main())
