"""`python -m socialcare.cli` runs the `socialcare` command."""

import sys

from socialcare.cli import main

sys.exit(main())
