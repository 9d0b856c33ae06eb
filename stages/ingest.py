"""Stage 'ingest': real data in (a Champ-layout folder, or videos + SMPL fits). (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.ingest import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
