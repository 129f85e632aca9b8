"""`make bench`: the feed's list path measured against the database's own JSON and a typical app.

Run `python -m bench.run --help` for the options; results land in bench/results/.
"""
