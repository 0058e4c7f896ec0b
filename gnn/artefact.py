"""The model artefact: everything needed to score a snapshot later, in one file.

``models_dir/model-<version>.pt`` holds the weights, the feature names and standardisation, the
network's shape, the tier thresholds and the held-out metrics; ``models_dir/CURRENT`` names the
file in use. Both are written to a temporary file and renamed, so a reader (the API reloading
the model) never sees half a file. The file holds only tensors and plain Python values and is
read with ``torch.load(weights_only=True)``: loading an artefact cannot run code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from gnn.anomaly import AnomalyReference
from gnn.calibrate import Thresholds
from gnn.features import Normalisation
from gnn.metrics import TrainMetrics
from gnn.model import ModelConfig
from graph.errors import ModelError, ValidationError

SUPERVISED = "supervised"
UNSUPERVISED = "unsupervised"
MODES = (SUPERVISED, UNSUPERVISED)
CURRENT = "CURRENT"
FORMAT = 1
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def model_file_name(version: str) -> str:
    """``model-<version>.pt``; the version must be a safe file-name fragment."""
    if not _VERSION_RE.match(version):
        raise ValidationError("version", version, "must be letters, digits, '.', '_' or '-' (at most 100)")
    return f"model-{version}.pt"


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
    means and stds fitted on the training graph.
    """

    version: str
    created_at: float
    mode: str
    feature_names: dict[str, tuple[str, ...]]
    normalisation: Normalisation
    model_config: ModelConfig | None
    state_dict: dict[str, torch.Tensor]
    account_thresholds: Thresholds
    transaction_thresholds: Thresholds
    metrics: TrainMetrics
    device_trained_on: str
    anomaly: AnomalyReference | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValidationError("mode", self.mode, f"must be one of {MODES}")
        if self.mode == SUPERVISED and self.model_config is None:
            raise ValidationError("model_config", None, "a supervised artefact needs its model config")
        if self.mode == UNSUPERVISED and self.anomaly is None:
            raise ValidationError("anomaly", None, "an unsupervised artefact needs its anomaly reference")
        model_file_name(self.version)

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ModelArtefact:
        if d.get("format") != FORMAT:
            raise ModelError(f"artefact format {d.get('format')!r} not supported (expected {FORMAT}); retrain the model")
        norm = dict(d["normalisation"])  # type: ignore[call-overload]
        return cls(
            version=str(d["version"]),
            created_at=float(d["created_at"]),  # type: ignore[arg-type]
            mode=str(d["mode"]),
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
        )

    def save(self, models_dir: Path) -> Path:
        """Write ``models_dir/model-<version>.pt`` and point ``models_dir/CURRENT`` at it.

        Returns the model file's path. Raises ``ModelError`` when the directory is not writable.
        """
        models_dir = Path(models_dir)
        path = models_dir / model_file_name(self.version)
        try:
            models_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, lambda f: torch.save(self.to_dict(), f))
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


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write through ``write(fileobj)`` into a temporary file beside ``path``, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
