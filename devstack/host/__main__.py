"""`python -m devstack.host`: see devstack.host."""

from __future__ import annotations

import sys

from .server import main

sys.exit(main())
