"""The alternatives DaRec's studies measured (docs/darec_study.md, docs/darec_sparse_study.md), kept reachable so
their rows can be reproduced; the shipped method is ``alignment/losses.py`` and ``alignment/darec_head.py``.

* ``global_modes.py``: the global term as the paper writes it (within-side similarity matrices) and its variations;
* ``local_modes.py``: the local term as InfoNCE over centres or as per-node soft assignments;
* ``modes.py``: :class:`DaRecStudyModes`, the one value that selects them (its defaults are the shipped method).

Nothing is imported here: ``losses.py`` imports the two mode modules and ``modes.py`` imports ``losses.py``.
"""
