"""painbattery's analysis side: video access, sessions, assay features, battery, statistics, CLI.

Importing ``behavior`` never imports torch: analysing existing pose files needs no deep learning stack.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# Quiet FFmpeg/OpenCV's own stderr warnings (we report failures in one line); before cv2 is imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

try:
    __version__ = version("painbattery")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
