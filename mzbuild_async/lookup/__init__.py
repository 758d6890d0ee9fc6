"""Is this spec published? The lookups and their tiers, cheapest first:
memory, disk (tags seen present before), daemon (the local engine),
registry (``HEAD``), manifest (``GET``)."""
