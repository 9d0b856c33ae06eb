"""Stage 'teacher': import Champ's weights or train the Champ-architecture teacher. (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.teacher import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
