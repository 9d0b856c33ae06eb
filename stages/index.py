"""DVC stage 'index': see docs/data.md (reads the 'index' section of --params)."""

import sys

from cosec.data.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("index", sys.argv[1:]))
