"""The command-line shell: Typer commands, rich rendering, and the one error -> exit code mapping."""
