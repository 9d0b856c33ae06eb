"""Stage 'index': the frame table the samplers read. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.index import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
