"""Stage 'phase1': distillation phase 1 (frames; ETA + CoNS). (cosec/pipeline)."""

import sys

from cosec.pipeline.distill import PHASE1
from cosec.pipeline.entry import main

if __name__ == "__main__":
    sys.exit(main(PHASE1))
