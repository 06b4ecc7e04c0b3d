"""``python -m rlsoft.cli``: the ``rlsoft`` command."""

import sys

from rlsoft.cli.main import main

sys.exit(main())
