"""`python -m fer_helpers`: the same command line as `fer-study`."""

import sys

from fer_helpers.orchestrate.cli import main

sys.exit(main())
