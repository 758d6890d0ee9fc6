"""Everything kept under the cache directory between runs, each file with one owner.

``digests`` (file digests keyed by stat), ``challenges`` (registry auth
challenges), ``history`` (build times), ``locks`` (per-spec locks across
processes) and ``integrity`` (the checks every one of them is read with).
A file that fails its check is a miss and one warning, never a value.
"""
