"""What a page or the CLI runs: each takes a config and gives a result."""
