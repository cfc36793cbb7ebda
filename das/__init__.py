"""ProcOS DAS: the Digital Assistant System of a BPMN-first process platform."""

import os as _os

__version__ = "0.1.0"

# litellm would otherwise fetch its cost map from the network at import (and wait ~2 s
# offline); the bundled copy is used instead. Set before anything imports litellm.
_os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
