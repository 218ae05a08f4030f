"""``python -m solidstack``: the ``solidstack`` command."""

from solidstack.cli import main

main()
