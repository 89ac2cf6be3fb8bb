"""The process model: listening sockets, workers, the supervisor, TLS."""
