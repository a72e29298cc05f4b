"""`python -m pipeline ...` is the same as `vidpipe ...`."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
