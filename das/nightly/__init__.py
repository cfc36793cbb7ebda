"""Nightly improvement: mine engine history, file refactor proposals (DESIGN.md capability 4)."""
