"""``python -m runlab ...``: the same as the ``runlab`` command."""

from runlab.cli.main import main

if __name__ == "__main__":
    main()
