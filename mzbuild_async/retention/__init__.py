"""Retention: which published tags ``gc`` deletes, and deleting them.

:mod:`.policy` gives every tag of an image's repository its verdict (kept,
and why, or deleted) and the bytes freed; :mod:`.deletions` carries the plan
out, each deletion checked against a fresh tag list and ``HEAD`` first.
Apart from :mod:`..release`, which publishes: nothing here writes an image.
"""
