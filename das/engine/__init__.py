"""The engine side of DAS: Camunda 7 REST client, external-task worker, kernel bootstrap."""
