"""Attestations: what an image is and how it was built, signed and attached to it.

:mod:`.statement` makes in-toto statements (SLSA provenance), :mod:`.dsse`
signs and verifies them as DSSE envelopes.
"""
