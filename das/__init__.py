"""ProcOS DAS: the Digital Assistant System of a BPMN-first process platform."""

__version__ = "0.1.0"
