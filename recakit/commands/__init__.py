"""The `recakit` command line: `main` builds the parser; each module adds one group of commands."""
