"""DVC stage 'frames': see docs/data.md (reads the 'frames' section of --params)."""

import sys

from cosec.data.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("frames", sys.argv[1:]))
