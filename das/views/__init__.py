"""Presentation, in one place: text views printed by the CLI and HTML pages served by the API.

``text`` renders proposals and reports for the terminal; ``proposal_page`` gathers the facts
the approval page shows (badges, diagram markers) as plain data; ``html`` renders the pages.
Views read contracts and the queue; nothing below this layer imports them.
"""
