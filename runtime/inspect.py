"""``python -m runtime.inspect FILE...``: a summary of any file the system reads (runtime.apps.inspect)."""

import sys

from runtime.apps.inspect import main

if __name__ == "__main__":
    sys.exit(main())
