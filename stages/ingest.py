"""DVC stage 'ingest': see docs/data.md (reads the 'ingest' section of --params)."""

import sys

from cosec.data.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("ingest", sys.argv[1:]))
