"""History reports for the CLI: where the data comes from, and how it looks."""
