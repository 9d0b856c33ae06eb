"""Stage 'seeds_report': the seeds study's table (mean and spread of every claim over seeds). (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.seeds_report import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
