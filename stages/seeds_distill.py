"""Stage 'seeds_distill': one seed of the seeds study (python stages/seeds_distill.py SEED; cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.seeds_distill import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
