"""Docker engines: the engine API (aiodocker) and ``docker buildx``, behind one seam."""
