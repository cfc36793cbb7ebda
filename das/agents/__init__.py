"""Agents: the guarded TDE loop, team selection, authoring, nightly curation."""
