"""``python -m runlab.cli``."""

from runlab.cli.main import main

main()
