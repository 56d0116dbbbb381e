"""`python -m xnnfit` runs the CLI."""

from xnnfit.cli import main

if __name__ == "__main__":
    main()
