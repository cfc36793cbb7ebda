"""BPMN toolkit: safe parse, graph model + edit ops, validate, diff, compile, simulate.

Kept import-free so ``import das.bpmn`` is cheap; import the submodule you need:
``das.bpmn.parse.parse``, ``das.bpmn.validate.validate``, ``das.bpmn.diff.diff``,
``das.bpmn.edits.apply_edits`` / ``edit_script_schema``, ``das.bpmn.write.to_bytes``.
"""
