"""Exit statuses beyond 0, 1 and 2 (what each means: ``main.EXIT_STATUSES``)."""

from __future__ import annotations

import signal

#: Ctrl-C, the reader of stdout gone (``| head``), SIGTERM.
INTERRUPTED, BROKEN_PIPE, TERMINATED = 130, 141, 128 + signal.SIGTERM
#: A CI step's ``--wait`` ran out (an awaited image never came), nothing else failed.
WAIT_RAN_OUT = 3
