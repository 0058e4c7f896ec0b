"""A small trained and scored home for the /v1 tests: synthetic events in an embedded SQLite
store, a GraphSAGE artefact as CURRENT (so unseen events are scored inductively), scores and
rings written back. Built once per test session; tests that change it work on a copy."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from api.security import ApiKey, KeyRing, Scope, new_key, parse_entry
from gnn.artefact.model_artefact import ModelArtefact
from gnn.training.train import TrainConfig, train
from graph.sqlite_store import SQLiteGraphStore
from ringwatch import pipeline
from ringwatch.settings import Settings

USERS = 800
SEED = 11


@dataclass(frozen=True)
class ServedHome:
    settings: Settings
    model_version: str
    ring_device: str  # a planted farm device
    ring_members: tuple[str, ...]  # accounts that used it
    known_user: str  # an account with no fraud role
    keys: dict[str, str]  # key name -> secret
    ring: KeyRing

    def copy(self, dest: Path) -> Settings:
        shutil.copytree(self.settings.home, dest)
        return Settings(home=dest)

    def store(self, settings: Settings | None = None) -> SQLiteGraphStore:
        return SQLiteGraphStore((settings or self.settings).store_path)


_home: list[ServedHome] = []


def served_home(base: Path) -> ServedHome:
    if _home:
        return _home[0]
    settings = Settings(home=base / "home")
    reuse = os.environ.get("RINGWATCH_TEST_SERVED_HOME")  # a home built here before (faster reruns)
    if reuse and (Path(reuse) / "models" / "CURRENT").is_file():
        shutil.copytree(reuse, settings.home)
    else:
        data = pipeline.step_generate(settings, users=USERS, seed=SEED)
        pipeline.step_ingest(settings, [data.events])
        pipeline.step_label(settings, data.labels)
        with pipeline.store_for(settings) as store:
            snapshot = store.snapshot()
        artefact = train(snapshot, TrainConfig(device="cpu"))  # GraphSAGE (no tree selection): inductive
        artefact.save(settings.models_dir)
        pipeline.step_score(settings)
    idents = pd.read_csv(settings.data_dir / "truth_identifiers.csv", dtype=str)
    events = pd.read_csv(settings.data_dir / "events.csv", dtype=str)
    # The planted fraud device used by the most accounts.
    fraud_devices = set(idents.loc[idents["role"].isin(["farm_device", "emulator_device", "mule_device"]), "identifier"])
    users_per_device = events[events["device_id"].isin(fraud_devices)].groupby("device_id")["user_id"].nunique()
    device = str(users_per_device.sort_values(ascending=False, kind="stable").index[0])
    members = tuple(sorted(set(events.loc[events["device_id"] == device, "user_id"])))
    truth = pd.read_csv(settings.data_dir / "truth_users.csv", dtype=str)
    clean = sorted(set(truth.loc[truth["is_fraud"] == "0", "user_id"]))
    keys: dict[str, str] = {}
    records: list[ApiKey] = []
    for name, scopes in (("checkout", [Scope.SCORE]), ("analyst", [Scope.INVESTIGATE]), ("desk", [Scope.LABEL]),
                         ("all", list(Scope))):  # fmt: skip
        secret, entry = new_key(name, scopes)
        keys[name] = secret
        records.append(parse_entry(entry, "test"))
    _home.append(
        ServedHome(
            settings=settings,
            model_version=ModelArtefact.load(settings.models_dir).version,
            ring_device=device,
            ring_members=members,
            known_user=clean[0],
            keys=keys,
            ring=KeyRing(records),
        )
    )
    return _home[0]
