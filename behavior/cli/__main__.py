"""``python -m behavior.cli``: the same as the ``painbattery`` command."""

from behavior.cli import main

main()
