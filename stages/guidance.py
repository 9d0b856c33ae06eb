"""DVC stage 'guidance': see docs/data.md (reads the 'guidance' section of --params)."""

import sys

from cosec.data.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("guidance", sys.argv[1:]))
