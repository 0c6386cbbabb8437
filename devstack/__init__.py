"""Local processes for development, tests and `make demo`: real Prometheus and Alertmanager on loopback."""
