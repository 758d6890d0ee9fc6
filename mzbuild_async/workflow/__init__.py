"""The application layer: each command's recipe, from fingerprints to a result value.

The command line parses arguments, calls one function here and renders what
it returns (:mod:`..report`). The modules, in the order a run uses them:

- :mod:`.options`: :class:`RunOptions`, how a run goes about its work.
- :mod:`.services`: the engines, registry client and lookups of a run.
- :mod:`.walk`: fingerprints to decisions, each released the moment it is final.
- :mod:`.rounds`: one round of decisions and work, and what rounds leave behind.
- :mod:`.ci_steps`: a CI step's checks and failure markers.
- :mod:`.events`, :mod:`.intervals`: where a run's events go; its timed intervals.
- :mod:`.results`: what runs and plans return.
- :mod:`.run` (``acquire``, ``ensure``, ``build``, ``run``), :mod:`.plan`: the recipes.
"""
