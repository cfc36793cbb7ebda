"""HTTP API and the approval page over the same queue rules as the CLI."""
