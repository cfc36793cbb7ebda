"""Tools an agent may call. Only those in the policy's ``allowed_tools`` are offered."""
