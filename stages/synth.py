"""Stage 'synth': the embedded synthetic data (anny bodies, videos + body parameters). (cosec/pipeline)."""

import sys

from cosec.pipeline.entry import main
from cosec.pipeline.synth import STAGE

if __name__ == "__main__":
    sys.exit(main(STAGE))
