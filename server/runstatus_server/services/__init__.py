"""The gRPC services: request checks, then one unit of work in the store."""
