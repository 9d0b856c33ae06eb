"""Stage 'frames': videos -> numbered PNG frames. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.frames import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
