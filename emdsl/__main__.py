"""``python -m emdsl ...``: the command line (``emdsl ...``)."""
import sys

from .cli import main

sys.exit(main())
