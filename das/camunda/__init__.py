"""Camunda 7 / Operaton as infrastructure: the REST client, typed variables, the engine process."""
