"""`python -m signalproof …` = the `signalproof` command."""

import sys

from signalproof.cli import main

sys.exit(main())
