"""painbattery's analysis side: video access, sessions, assay features, battery, statistics, CLI.

Importing ``behavior`` never imports torch: analysing existing pose files needs no deep learning stack.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("painbattery")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
