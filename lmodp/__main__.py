"""``python -m lmodp`` runs the command line."""

import sys

from lmodp.cli import main

sys.exit(main())
