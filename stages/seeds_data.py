"""Stage 'seeds_data': one seed of the seeds study (python stages/seeds_data.py SEED; cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.seeds_data import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
