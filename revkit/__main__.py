"""``python -m revkit`` runs the command line."""

import sys

from revkit.cli import main

sys.exit(main())
