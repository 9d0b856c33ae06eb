import sys

from cosec.cli import main

sys.exit(main())
