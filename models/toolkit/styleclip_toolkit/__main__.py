"""`python -m styleclip_toolkit`: the toolkit CLI (what `npm run toolkit --` runs)."""

from __future__ import annotations

import sys

from styleclip_toolkit.cli import main

sys.exit(main())
