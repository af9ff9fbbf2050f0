"""The gRPC services, on one template: a handler checks its request's shape (checks.py), does
one unit of work in the store through the domain modules, and makes its answer from the values
they return. rpc.py admits every call and maps its errors; kept_answers.py writes a request
with a request_id once, keeping what of its answer a repeat needs.
"""
