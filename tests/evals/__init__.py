"""Tests of the evaluation suites (das.evals)."""
