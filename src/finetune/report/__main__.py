"""``python -m finetune.report <sweep dir>``."""

from __future__ import annotations

import sys

from finetune.report.cli import main

if __name__ == "__main__":
    sys.exit(main())
