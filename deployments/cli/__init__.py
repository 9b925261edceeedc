"""The `exports` command line: app.py assembles the command groups, console.py reports errors."""
