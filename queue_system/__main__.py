"""``python -m queue_system``: see ``cli``."""

import sys

from .cli import main

sys.exit(main())
