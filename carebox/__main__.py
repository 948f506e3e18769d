"""`python -m carebox` runs the command line."""

import sys

from carebox.cli import main

sys.exit(main())
