"""PostgreSQL's advisory locks and the channel its servers wake each other on: one 64-bit key
space per database, shared with whatever else uses it, so each key spells its purpose."""

MIGRATION_LOCK = 0x72756E5F6D696772  # "run_migr": one server migrates at a time (migrations.py)
EVENT_LOCK = 0x72756E5F65767473  # "run_evts": event appenders commit in sequence order (rows.py)
SWEEP_LOCK = 0x72756E5F73776570  # "run_swep": held by the one server that sweeps (engine.py: lead)
MERGE_LOCK = 0x72756E5F6D657267  # "run_merg": one merge of the count buckets at a time (rows.py)
# Sent once by each transaction that appended events (engine.py); every server LISTENs.
EVENTS_CHANNEL = "runstatus_events"
