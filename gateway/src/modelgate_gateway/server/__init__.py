"""The client-facing server side of the process: connection limits and timeouts, and the drain on SIGTERM."""
