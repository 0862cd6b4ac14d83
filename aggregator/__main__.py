"""`python -m aggregator` runs the command line."""

from aggregator.cli import entry

if __name__ == "__main__":
    entry()
