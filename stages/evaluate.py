"""Stage 'evaluate': teacher vs student on every test split -> reports/metrics.json. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.evaluate import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
