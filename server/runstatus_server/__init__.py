"""The runstatus server: classification, the run rules, SQLite storage, gRPC services."""
