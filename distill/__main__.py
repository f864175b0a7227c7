"""`python -m distill ...`: the same command line as the `distill` console script."""

from distill.cli import main

if __name__ == "__main__":
    main()
