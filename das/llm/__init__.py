"""The LLM gateway: every model call in DAS goes through ``das.llm.gateway.complete``."""
