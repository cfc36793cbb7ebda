"""Authoring: drafting from chat, the approval queue, and deployment of approved proposals."""
