"""Helpers for the analysts' notebooks (``notebooks/``), one module per topic: ``figures``, ``data``,
``graph_shape``, ``thresholds`` and ``rings``. Notebooks import from the topic modules.

Everything here reads the typed objects the command line produces (``Snapshot``, ``ScoreWriteback``,
``Ring``) and returns typed records, pandas frames or matplotlib figures; nothing writes to a store.
Figures use matplotlib's object API (no global ``pyplot`` state), so they render the same in a
notebook, a script or a test.
"""
