"""One module per subcommand; each exposes `command` and imports heavy modules inside it."""
