"""`runstatus export`: work orders with their runs and step runs (and events, if asked) in the
archive's shape (archive/records.py), read straight from the database, a keyset page at a time.
filters.py says which work orders; batches.py reads them; command.py is the command line."""
