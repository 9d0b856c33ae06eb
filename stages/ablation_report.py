"""Stage 'ablation_report': the ablation table (Table 4 shape). (cosec/pipeline)."""

import sys

from cosec.pipeline.ablation_report import STAGE
from cosec.pipeline.entry import main

if __name__ == "__main__":
    sys.exit(main(STAGE))
