"""``python -m cnnlab`` runs the command line."""

from cnnlab.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
