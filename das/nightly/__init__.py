"""Nightly improvement: mine engine history, file refactor proposals (see docs/ARCHITECTURE.md)."""
