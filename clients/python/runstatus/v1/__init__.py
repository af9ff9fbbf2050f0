"""Code generated from proto/runstatus/v1 by `make generate`; do not edit the *_pb2* files."""
