"""Stage 'ingest' of real/dvc.yaml: real data in (cosec/pipeline/ingest.py)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.ingest import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
