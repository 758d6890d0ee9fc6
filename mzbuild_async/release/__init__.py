"""Release: what happens to published images after a build.

:mod:`.promote` gives images release tags (a retag that keeps the digest, or
an index over several arches), refusing to move a tag that is not a moving one.
"""
