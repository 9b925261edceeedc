"""`python -m deployments.cli ...`: the `exports` command."""

from deployments.cli.app import main

if __name__ == "__main__":  # not when a forked run process preloads this module
    main()
