"""DVC stage 'synth': see docs/data.md (reads the 'synth' section of --params)."""

import sys

from cosec.data.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("synth", sys.argv[1:]))
