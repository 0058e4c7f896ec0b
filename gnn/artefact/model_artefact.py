"""The model artefact: everything needed to score a snapshot later, in one file.

``models_dir/model-<version>.pt`` holds the weights, the feature names and standardisation, the
network's shape, the tier thresholds and the held-out metrics; ``models_dir/CURRENT`` names the
file in use. Both are written to a temporary file and renamed, so a reader (the API reloading
the model) never sees half a file. The file holds only tensors and plain Python values and is
read with ``torch.load(weights_only=True)``: loading an artefact cannot run code.

``scorer`` says what makes the scores of a supervised artefact: ``"graphsage"`` (the network),
or a tree family of ``gnn.core.trees`` (``"trees_aggregated"``, ``"hybrid"``) that won the selection
(``gnn.training.selection``); then ``trees`` holds the fitted trees as plain arrays (no pickle), and the
GraphSAGE weights stay in the artefact (the hybrid's inputs include its embeddings). Beside the
``.pt`` file, ``model-<version>.json`` repeats the metadata for people and tools: scorer, the
selection, the promotion decision, metrics, thresholds. Format 1 artefacts (before the selection)
still load, as GraphSAGE scorers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, cast

import numpy as np
import torch

from gnn.artefact.lineage import Promotion, Selection
from gnn.core.anomaly import AnomalyReference
from gnn.core.features import Normalisation
from gnn.core.metrics import TrainMetrics
from gnn.core.model import ModelConfig
from gnn.core.thresholds import Thresholds
from gnn.core.tree_features import TREE_FAMILIES
from gnn.core.trees import TreeScorer
from graph.errors import ModelError, ValidationError

#: How an artefact scores: trained on fraud labels, or the unsupervised graph anomaly score that
#: ships when labels are too few (``gnn.training.train.TrainConfig.min_fraud_labels``).
Mode = Literal["supervised", "unsupervised"]
SUPERVISED: Mode = "supervised"
UNSUPERVISED: Mode = "unsupervised"
MODES: tuple[Mode, ...] = (SUPERVISED, UNSUPERVISED)
CURRENT = "CURRENT"
#: 2 added ``scorer``, ``trees``, ``selection`` and ``promotion``; format 1 files still load.
FORMAT = 2
READABLE_FORMATS = (1, 2)
#: The GraphSAGE network scores (the default, and what every format-1 artefact does).
GRAPHSAGE = "graphsage"
#: What can score a supervised artefact.
SCORERS: tuple[str, ...] = (GRAPHSAGE, *TREE_FAMILIES)
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def model_file_name(version: str) -> str:
    """``model-<version>.pt``; the version must be a safe file-name fragment."""
    if not _VERSION_RE.match(version):
        raise ValidationError("version", version, "must be letters, digits, '.', '_' or '-' (at most 100)")
    return f"model-{version}.pt"


def metadata_file_name(version: str) -> str:
    """``model-<version>.json``: the artefact's metadata beside its ``.pt`` file."""
    return model_file_name(version)[: -len(".pt")] + ".json"


def make_version(created_at: float, mode: str, tensors: dict[str, torch.Tensor]) -> str:
    """``YYYYmmdd-HHMMSS-<6 hex>`` (UTC), the hex a digest of the mode and the weights, so two
    different models never share a version and the same weights always get the same suffix."""
    h = hashlib.sha256(mode.encode())
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().contiguous().numpy().tobytes())
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(created_at)) + "-" + h.hexdigest()[:6]


@dataclass(frozen=True)
class ModelArtefact:
    """A trained (or unsupervised) scorer and its calibration.

    ``mode`` is ``"supervised"`` (GraphSAGE weights in ``state_dict``, ``model_config`` set) or
    ``"unsupervised"`` (``anomaly`` reference set, no weights). ``normalisation`` holds per-block
    means and stds fitted on the training graph. ``scorer`` (supervised only; see the module
    docstring) names what scores, ``trees`` the fitted trees when that is a tree family.
    ``selection`` records the candidates and the winner, ``promotion`` the comparison with the
    model that was current when this one was trained (``None`` before ``ringwatch train`` sets
    it). ``metrics`` and the thresholds are those of the shipped scorer.
    """

    version: str
    created_at: float
    mode: Mode
    feature_names: dict[str, tuple[str, ...]]
    normalisation: Normalisation
    model_config: ModelConfig | None
    state_dict: dict[str, torch.Tensor]
    account_thresholds: Thresholds
    transaction_thresholds: Thresholds
    metrics: TrainMetrics
    device_trained_on: str
    anomaly: AnomalyReference | None = None
    scorer: str = GRAPHSAGE
    trees: TreeScorer | None = None
    selection: Selection | None = None
    promotion: Promotion | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError("mode", self.mode, f"must be one of {MODES}")
        if self.mode == SUPERVISED and self.model_config is None:
            raise ValidationError("model_config", None, "a supervised artefact needs its model config")
        if self.mode == UNSUPERVISED and self.anomaly is None:
            raise ValidationError("anomaly", None, "an unsupervised artefact needs its anomaly reference")
        if self.scorer not in SCORERS:
            raise ValidationError("scorer", self.scorer, f"must be one of {SCORERS}")
        if self.scorer != GRAPHSAGE:
            if self.mode != SUPERVISED:
                raise ValidationError("scorer", self.scorer, "an unsupervised artefact scores with the anomaly score")
            if self.trees is None or self.trees.family != self.scorer:
                raise ValidationError(
                    "trees", None if self.trees is None else self.trees.family, f"scorer {self.scorer!r} needs its fitted trees"
                )
        model_file_name(self.version)

    @property
    def shipped(self) -> str:
        """What makes the scores, in one word: ``"anomaly"`` in unsupervised mode, else ``scorer``."""
        return "anomaly" if self.mode == UNSUPERVISED else self.scorer

    # -- changing -------------------------------------------------------------------------

    def with_thresholds(
        self, *, account: Thresholds | None = None, transaction: Thresholds | None = None
    ) -> ModelArtefact:
        """A copy with hand-set tier thresholds (``None`` keeps the current ones). The version is
        unchanged: the scores are the same, only their cut into tiers moves."""
        return dataclasses.replace(
            self,
            account_thresholds=account or self.account_thresholds,
            transaction_thresholds=transaction or self.transaction_thresholds,
        )

    # -- persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """Plain values and tensors only (``torch.load(weights_only=True)`` can read it)."""
        return {
            "format": FORMAT,
            "version": self.version,
            "created_at": float(self.created_at),
            "mode": self.mode,
            "feature_names": {k: list(v) for k, v in self.feature_names.items()},
            "normalisation": {
                "means": {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in self.normalisation.means.items()},
                "stds": {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in self.normalisation.stds.items()},
            },
            "model_config": None if self.model_config is None else self.model_config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "account_thresholds": self.account_thresholds.to_dict(),
            "transaction_thresholds": self.transaction_thresholds.to_dict(),
            "metrics": self.metrics.to_dict(),
            "device_trained_on": self.device_trained_on,
            "anomaly": None if self.anomaly is None else self.anomaly.to_dict(),
            "scorer": self.scorer,
            "trees": None if self.trees is None else self.trees.to_dict(),
            "selection": None if self.selection is None else self.selection.to_dict(),
            "promotion": None if self.promotion is None else self.promotion.to_dict(),
        }

    def metadata(self) -> dict[str, object]:
        """Everything but the weights and trees, JSON-ready (``nan`` becomes ``null``)."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("state_dict", "trees", "normalisation", "anomaly")}
        d["shipped"] = self.shipped
        return jsonable(d)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ModelArtefact:
        if d.get("format") not in READABLE_FORMATS:
            raise ModelError(f"artefact format {d.get('format')!r} not supported (expected {FORMAT}); retrain the model")
        norm = dict(d["normalisation"])  # type: ignore[call-overload]
        return cls(
            version=str(d["version"]),
            created_at=float(d["created_at"]),  # type: ignore[arg-type]
            mode=cast(Mode, str(d["mode"])),  # checked in __post_init__
            feature_names={str(k): tuple(v) for k, v in dict(d["feature_names"]).items()},  # type: ignore[call-overload]
            normalisation=Normalisation(
                means={k: v.numpy() for k, v in norm["means"].items()},
                stds={k: v.numpy() for k, v in norm["stds"].items()},
            ),
            model_config=None if d["model_config"] is None else ModelConfig.from_dict(d["model_config"]),  # type: ignore[arg-type]
            state_dict=dict(d["state_dict"]),  # type: ignore[call-overload]
            account_thresholds=Thresholds.from_dict(d["account_thresholds"]),  # type: ignore[arg-type]
            transaction_thresholds=Thresholds.from_dict(d["transaction_thresholds"]),  # type: ignore[arg-type]
            metrics=TrainMetrics.from_dict(d["metrics"]),  # type: ignore[arg-type]
            device_trained_on=str(d["device_trained_on"]),
            anomaly=None if d.get("anomaly") is None else AnomalyReference.from_dict(d["anomaly"]),  # type: ignore[arg-type]
            scorer=str(d.get("scorer", GRAPHSAGE)),
            trees=None if d.get("trees") is None else TreeScorer.from_dict(d["trees"]),  # type: ignore[arg-type]
            selection=None if d.get("selection") is None else Selection.from_dict(d["selection"]),  # type: ignore[arg-type]
            promotion=None if d.get("promotion") is None else Promotion.from_dict(d["promotion"]),  # type: ignore[arg-type]
        )

    def save(self, models_dir: Path, *, make_current: bool = True) -> Path:
        """Write ``models_dir/model-<version>.pt`` and its ``.json`` metadata, and point
        ``models_dir/CURRENT`` at it unless ``make_current=False`` (a model kept back: saved for
        inspection, not used).

        Returns the model file's path. Raises ``ModelError`` when the directory is not writable.
        """
        models_dir = Path(models_dir)
        path = models_dir / model_file_name(self.version)
        meta = json.dumps(self.metadata(), indent=1, sort_keys=True).encode() + b"\n"
        try:
            models_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(models_dir)
            _atomic_write(path, lambda f: torch.save(self.to_dict(), f))
            _atomic_write(models_dir / metadata_file_name(self.version), lambda f: f.write(meta))
            if make_current:
                _atomic_write(models_dir / CURRENT, lambda f: f.write(path.name.encode() + b"\n"))
        except OSError as e:
            raise ModelError(f"cannot write model artefact to {models_dir}: {e}") from e
        return path

    @classmethod
    def load(cls, models_dir: Path, version: str | None = None) -> ModelArtefact:
        """Read the artefact named by ``models_dir/CURRENT`` (``version=None``) or a given version.

        Raises:
            ModelError: no model there yet, the named version is missing, or the file is unreadable.
            ValidationError: ``version`` is not a valid version string.
        """
        models_dir = Path(models_dir)
        if version is None:
            current = models_dir / CURRENT
            if not current.is_file():
                raise ModelError(f"no trained model in {models_dir} (no {CURRENT} file): run `ringwatch train` first")
            name = current.read_text().strip()
            path = models_dir / name
            if not name or not path.is_file():
                raise ModelError(f"{current} names {name!r}, which does not exist: run `ringwatch train` again")
        else:
            path = models_dir / model_file_name(version)
            if not path.is_file():
                raise ModelError(f"model version {version!r} not found in {models_dir}: run `ringwatch train` first")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several unrelated types for a bad file
            raise ModelError(f"cannot read model artefact {path}: {e}") from e
        if not isinstance(raw, dict):
            raise ModelError(f"{path} is not a ringwatch model artefact")
        try:
            return cls.from_dict(raw)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ModelError(f"{path} is not a valid ringwatch model artefact ({e!r}); retrain the model") from e


def read_current_version(models_dir: Path) -> str | None:
    """The version ``models_dir/CURRENT`` names (``model-<version>.pt`` -> ``<version>``), or
    None when there is no such file yet. Cheap: the API polls it to pick up promoted models.

    Raises:
        ModelError: the file exists but cannot be read or names no model file.
    """
    current = Path(models_dir) / CURRENT
    try:
        name = current.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read {current}: {e}") from e
    if not (name.startswith("model-") and name.endswith(".pt")):
        raise ModelError(f"{current} names {name!r}, not a model-<version>.pt file")
    return name[len("model-") : -len(".pt")]


def jsonable(x: object) -> object:
    """``x`` with tuples as lists, numpy and torch numbers as Python numbers, and floats that are
    not finite as ``None``: ready for ``json.dumps`` (artefact metadata, evaluation reports)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, torch.Tensor):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        return jsonable(x.item())
    return x


# A temporary file of ``_atomic_write``: ``.<final name>.<pid of the writer>.<random>``.
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+")


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(models_dir: Path) -> list[Path]:
    """Remove the temporary files of saves whose process died mid-write (``kill -9`` during
    ``train``); a live process's are left alone. Returns what was removed."""
    removed = []
    for p in Path(models_dir).glob(".*"):
        m = _TEMP_FILE.fullmatch(p.name)
        if m is None or _alive(int(m["pid"])):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
