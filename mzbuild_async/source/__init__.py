"""From a working tree to fingerprints: the git view, the Cargo workspace,
each image's inputs, their digests, the fingerprint algorithm and the
``Repository`` façade over them (and ``explain``, which compares two)."""
