"""``python -m embedspace.cli ...`` runs the command line, like the ``embedspace`` script."""

import sys

from embedspace.cli.main import main

sys.exit(main())
