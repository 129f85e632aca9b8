"""Sources: keep clubfeed in sync with the vendor's own database, read-only, from a mapping file.

mapping.py   the YAML file, checked with line numbers
database.py  the source: read-only engine, its clock and open transactions, keyset reads
watermark.py when a stamp is safe to pass (late commits are never lost)
convert.py   rows to records
writer.py    records into clubfeed through the ingest path, references fetched first
runner.py    backfill, follow, reconcile; state.py and lock.py what it keeps and holds
check.py     `clubfeed source check`
"""
