"""Stage 'ablation': one rung of the ladder (python stages/ablation.py VARIANT --params FILE; cosec/pipeline)."""

import sys

from cosec.pipeline.ablation import VARIANT
from cosec.pipeline.entry import main

if __name__ == "__main__":
    sys.exit(main(VARIANT))
