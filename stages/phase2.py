"""Stage 'phase2': distillation phase 2 (clips; temporal self-dependency). (cosec/pipeline)."""

import sys

from cosec.pipeline.distill import PHASE2
from cosec.pipeline.entry import main

if __name__ == "__main__":
    sys.exit(main(PHASE2))
