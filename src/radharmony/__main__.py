"""Allow ``python -m radharmony``."""

from __future__ import annotations

import sys

from radharmony.cli import main

sys.exit(main())
