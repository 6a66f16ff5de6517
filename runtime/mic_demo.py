"""``python -m runtime.mic_demo``: two microphones (or two WAVs) -> both people, live (``runtime.apps.mic_demo``)."""

import sys

from runtime.apps.mic_demo import main

if __name__ == "__main__":
    sys.exit(main())
