"""`python -m consensus ...` is `python -m consensus.sim ...` (the simulator's command line)."""

import sys

from consensus.sim import main

sys.exit(main())
