"""Stage 'guidance': body parameters -> depth, normal, semantic map, skeleton, mask. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.guidance import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
