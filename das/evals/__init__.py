"""Evaluation suites that measure whether DAS loops give right answers, not only valid ones."""
