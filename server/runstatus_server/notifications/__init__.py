"""Notifications that are owed the moment their event commits, and delivered at least once.

A subscription (the store's notification_subscriptions; for now the one --admin-webhook stands
for) says which events it wants and where they go. On the leading server (Store.lead: one at a
time among servers sharing a database) two loops run:

- outbox.py scans the event log past each subscription's cursor and writes a delivery for every
  event it wants, moving the cursor in the same transaction;
- delivery.py sends the due deliveries, concurrently with a bound per subscription, signed
  (signing.py), and writes each outcome back: delivered, or retried with backoff (retries.py)
  until the retry window runs out, then dead.

Everything owed is in the database, so a receiver's outage, a restart, a SIGKILL or a change of
leader only delays it. The error-level log line for the admin is notifier.py's, as before.
"""
