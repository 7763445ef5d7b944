"""`python -m ml_assets.cli`: the `ml-assets` command."""

import sys

from ml_assets.cli import main

sys.exit(main())
