"""Stage 'report': tables and plots from metrics.json. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.report import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
