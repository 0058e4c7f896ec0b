"""The model and everything around it, one sub-package per job, each importing only those before
it: ``core`` (features, GraphSAGE, the tree ensembles, the anomaly score, tier thresholds,
metrics), ``artefact`` (the file a model ships in), ``serving``, ``training`` (what ships) and
``evaluation``."""

import os

# OpenMP threads (torch's intra-op pool, scikit-learn's trees) sleep instead of spinning while
# they wait. On a machine whose cores are busy with other work, spinning slows training down
# (README, "Speed on a busy machine"). ACTIVE suits a machine of one's own. libgomp
# reads this when torch loads, so it is set before anything here imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
