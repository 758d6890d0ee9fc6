"""Is this spec published? The lookup engine and its tiers, cheapest first:
memory, disk (tags seen present before), daemon (the local engine),
registry (``HEAD``), manifest (``GET``)."""
