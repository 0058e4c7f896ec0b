"""Data tests for the synthetic generator: schema, determinism, and the planted structure that
the product's detection quality is judged on (rings, late joiners, hard negatives, labels)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from graph.errors import ValidationError
from synthetic.generator import (
    EVENT_COLUMNS,
    LATE_JOIN_FROM,
    RING_KINDS,
    RING_SIZE,
    SCENARIOS,
    GeneratedDataset,
    SyntheticConfig,
    generate,
)

USERS = 2500
CONFIG = SyntheticConfig(users=USERS, seed=11)
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=CONFIG.days)
FILES = ("events", "labels", "truth_users", "truth_transactions", "truth_identifiers")


@dataclass(frozen=True)
class Loaded:
    result: GeneratedDataset
    events: pd.DataFrame
    labels: pd.DataFrame
    users: pd.DataFrame
    txns: pd.DataFrame
    idents: pd.DataFrame


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _digest(result: GeneratedDataset) -> dict[str, str]:
    return {f: hashlib.sha256(getattr(result, f).read_bytes()).hexdigest() for f in FILES}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    result = generate(CONFIG, tmp_path_factory.mktemp("syn") / "a")
    events = _read(result.events)
    events["t"] = pd.to_datetime(events["ts"], utc=True)
    return Loaded(result, events, _read(result.labels), _read(result.truth_users),
                  _read(result.truth_transactions), _read(result.truth_identifiers))  # fmt: skip


def _fraud_ids(d: Loaded) -> set[str]:
    return set(d.users.user_id[d.users.is_fraud == "1"])


# ------------------------------------------------------------------------------------------
# code: determinism and validation
# ------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(data: Loaded, tmp_path: Path) -> None:
    again = generate(CONFIG, tmp_path / "b")
    assert _digest(again) == _digest(data.result)


def test_different_seed_gives_different_files(data: Loaded, tmp_path: Path) -> None:
    other = generate(SyntheticConfig(users=USERS, seed=12), tmp_path / "c")
    assert _digest(other)["events"] != _digest(data.result)["events"]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("users", {"users": 10}),
        ("days", {"days": 2}),
        ("label_reveal", {"label_reveal": 1.5}),
        ("label_noise", {"label_noise": -0.1}),
        ("start", {"start": "not a date"}),
    ],
)
def test_bad_config_names_the_field(field: str, kwargs: dict, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        generate(SyntheticConfig(**kwargs), tmp_path)
    assert err.value.field == field


# ------------------------------------------------------------------------------------------
# data: schema
# ------------------------------------------------------------------------------------------


def test_columns_in_order(data: Loaded) -> None:
    assert tuple(_read(data.result.events).columns) == EVENT_COLUMNS
    assert list(data.labels.columns) == ["entity", "entity_id", "label", "ts", "source"]
    assert list(data.users.columns) == ["user_id", "is_fraud", "ring_id", "ring_kind", "graph_only"]
    assert list(data.txns.columns) == ["txn_id", "is_fraud", "scenario"]
    assert list(data.idents.columns) == ["kind", "identifier", "role"]


def test_counts_match_files(data: Loaded) -> None:
    r = data.result
    assert r.n_events == len(data.events) and r.n_users == USERS == len(data.users)
    assert r.n_fraud_users == len(_fraud_ids(data))
    assert r.rings == data.users.ring_id[data.users.ring_id != ""].nunique() == max(4, USERS // 250)
    assert 80_000 * USERS / 5000 <= r.n_events <= 150_000 * USERS / 5000


def test_field_formats(data: Loaded) -> None:
    ev = data.events
    assert ev.ts.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert data.labels.ts.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert ev.txn_id.str.fullmatch(r"t\d{7}").all()
    assert ev.user_id.str.fullmatch(r"u\d{6}").all()
    assert ev.device_id.str.fullmatch(r"d\d{5}").all()
    assert ev.merchant_id[ev.merchant_id != ""].str.fullmatch(r"m\d{4}").all()
    assert set(ev.event) == {"payment", "refund", "signup", "login"}
    assert set(ev.status) == {"approved", "declined"}
    ips = [ipaddress.ip_address(x) for x in ev.ip.unique()]  # raises on an invalid address
    assert any(a.version == 6 for a in ips) and any(a.version == 4 for a in ips)
    assert all(str(a) == s for a, s in zip(ips, ev.ip.unique(), strict=True))  # canonical text
    assert (ev.t >= START).all() and (ev.t < END).all()
    assert ev.t.is_monotonic_increasing


def test_txn_ids_unique_and_truth_aligned(data: Loaded) -> None:
    assert data.events.txn_id.is_unique
    assert data.txns.txn_id.tolist() == data.events.txn_id.tolist()


def test_money_events_have_merchant_amount_currency(data: Loaded) -> None:
    ev = data.events
    money = ev.event.isin(["payment", "refund"])
    assert (ev.merchant_id[money] != "").all()
    amounts = ev.amount[money]
    assert amounts.str.fullmatch(r"\d+\.\d\d").all()  # two decimals, never negative
    assert set(ev.currency[money]) == {"USD", "EUR", "GBP"}
    assert (ev.merchant_id[~money] == "").all() and (ev.amount[~money] == "").all()


def test_signup_is_each_users_first_event(data: Loaded) -> None:
    ev = data.events
    signups = ev[ev.event == "signup"]
    assert signups.user_id.is_unique and set(signups.user_id) == set(data.users.user_id)
    first = ev.groupby("user_id", sort=False).head(1)
    assert (first.event == "signup").all()


def test_truth_transactions_mark_money_events_of_fraud_users_and_stolen_cards(data: Loaded) -> None:
    ev, txns = data.events, data.txns
    stolen = txns.scenario == "compromised_merchant"
    expected = (ev.user_id.isin(_fraud_ids(data)) & ev.event.isin(["payment", "refund"])) | stolen
    assert (txns.is_fraud == "1").tolist() == expected.tolist()
    assert set(txns.scenario[txns.is_fraud == "1"]) == set(SCENARIOS)
    assert (txns.scenario[txns.is_fraud == "0"] == "").all()
    # Scenario of a fraud user's payments is its ring kind, or lone_fraudster outside rings.
    kind = ev.user_id.map(data.users.set_index("user_id").ring_kind).replace("", "lone_fraudster")
    own = (txns.is_fraud == "1") & ~stolen
    assert (txns.scenario[own] == kind[own]).all()


def _stolen(d: Loaded) -> pd.DataFrame:
    return d.events[d.txns.scenario == "compromised_merchant"]


def test_compromised_merchants_charge_the_cards_of_ordinary_users(data: Loaded) -> None:
    ev, stolen = data.events, _stolen(data)
    merchants = set(data.idents.identifier[data.idents.role == "compromised_merchant"])
    assert len(merchants) == max(2, USERS // 1500) and set(stolen.merchant_id) == merchants
    assert (stolen.event == "payment").all()
    assert not stolen.user_id.isin(_fraud_ids(data)).any()  # the victims are ordinary accounts
    # Each charge carries the device and IP of one of the victim's own earlier events.
    for row in stolen.itertuples():
        earlier = ev[(ev.user_id == row.user_id) & (ev.t < row.t) & (ev.index != row.Index)]
        assert ((earlier.device_id == row.device_id) & (earlier.ip == row.ip)).any()
    # A window of days per merchant; the first early (training sees it), another late.
    span = stolen.groupby("merchant_id").t.agg(["min", "max"])
    assert ((span["max"] - span["min"]) <= timedelta(days=21)).all()
    mid = START + timedelta(days=CONFIG.days / 2)
    assert (span["min"] < mid).sum() == 1 and (span["min"] > mid).sum() >= 1
    # The merchant also keeps its ordinary traffic in the window.
    for m, row in span.iterrows():
        ordinary = ev[(ev.merchant_id == m) & (ev.t >= row["min"]) & (ev.t <= row["max"])]
        assert len(ordinary) > len(stolen[stolen.merchant_id == m])


@pytest.mark.parametrize("labels", ["all", "transactions"])
def test_stolen_card_payments_are_charged_back_within_days(labels: str, tmp_path: Path) -> None:
    result = generate(SyntheticConfig(users=USERS, seed=11, labels=labels), tmp_path)
    ev, txns, lab = _read(result.events), _read(result.truth_transactions), _read(result.labels)
    stolen = ev[(txns.scenario == "compromised_merchant") & (ev.status == "approved")]
    cb = lab[(lab.entity == "transaction") & lab.entity_id.isin(stolen.txn_id)].set_index("entity_id")
    assert (cb.label == "fraud").all() and (cb.source == "chargeback").all()
    assert 0.7 <= len(cb) / len(stolen) <= 0.97
    delay = pd.to_datetime(cb.ts, utc=True) - pd.to_datetime(stolen.set_index("txn_id").ts[cb.index], utc=True)
    assert (delay >= timedelta(days=2)).all() and (delay < timedelta(days=10)).all()
    # Where account verdicts exist, every victim charged back is cleared as legitimate after
    # its first chargeback (the card was stolen, the account did nothing wrong).
    users = lab[(lab.entity == "user") & lab.entity_id.isin(stolen.user_id[stolen.txn_id.isin(cb.index)])]
    if labels == "all":
        cleared = users[(users.label == "legit") & (users.source == "investigator")]
        assert cleared.entity_id.nunique() == stolen.user_id[stolen.txn_id.isin(cb.index)].nunique()
        first_cb = pd.to_datetime(cb.ts, utc=True).groupby(stolen.set_index("txn_id").user_id[cb.index]).min()
        last_clear = pd.to_datetime(cleared.groupby("entity_id").ts.max(), utc=True)
        assert (last_clear.to_numpy() > first_cb[last_clear.index].to_numpy()).all()
    else:
        assert users.empty


def test_identifier_roles_occur_in_events(data: Loaded) -> None:
    ev, idents = data.events, data.idents
    seen = {"device": set(ev.device_id), "ip": set(ev.ip), "merchant": set(ev.merchant_id)}
    assert all(row.identifier in seen[row.kind] for row in idents.itertuples())
    roles = set(idents.role)
    for role in ("family_device", "office_ip", "campus_ip", "carrier_nat_ip", "proxy_ip",
                 "colluding_merchant", "card_testing_merchant"):  # fmt: skip
        assert role in roles


# ------------------------------------------------------------------------------------------
# data: planted structure
# ------------------------------------------------------------------------------------------


def test_fraud_share_and_ring_sizes(data: Loaded) -> None:
    users = data.users
    share = (users.is_fraud == "1").mean()
    assert 0.03 <= share <= 0.05
    ring_members = users[users.ring_id != ""]
    assert (ring_members.is_fraud == "1").all()
    assert ring_members.ring_id.str.fullmatch(r"ring-\d{4}").all()
    assert set(ring_members.ring_kind) == set(RING_KINDS)
    for (_, kind), size in ring_members.groupby(["ring_id", "ring_kind"]).size().items():
        lo, hi = RING_SIZE[kind]
        assert lo <= size <= hi, (kind, size)


def _signup_times(d: Loaded) -> pd.Series:
    ev = d.events
    return ev[ev.event == "signup"].set_index("user_id").t


def test_late_joiners_tied_to_earlier_ring_members(data: Loaded) -> None:
    ev = data.events
    signup = _signup_times(data)
    members = data.users[data.users.ring_id != ""].assign(su=lambda f: f.user_id.map(signup))
    cut = START + timedelta(days=CONFIG.days * LATE_JOIN_FROM)
    late = members[members.su >= cut]
    assert len(late) >= data.result.rings // 2
    ids_of = {
        u: set("d" + g.device_id) | set("i" + g.ip)
        for u, g in ev[ev.user_id.isin(members.user_id)].groupby("user_id")
    }
    for row in late.itertuples():
        earlier = members[(members.ring_id == row.ring_id) & (members.su < row.su)]
        shared = set().union(*(ids_of[u] for u in earlier.user_id)) & ids_of[row.user_id]
        assert shared, f"late joiner {row.user_id} shares nothing with {row.ring_id}"


def test_late_joiners_look_ordinary_on_their_own(data: Loaded) -> None:
    ev = data.events
    signup = _signup_times(data)
    cut = START + timedelta(days=CONFIG.days * LATE_JOIN_FROM)
    users = data.users
    late = set(users.user_id[(users.ring_id != "") & (users.user_id.map(signup) >= cut)])
    pay = ev[ev.event == "payment"].assign(amount=lambda f: f.amount.astype(float))
    late_amounts = pay.amount[pay.user_id.isin(late)]
    legit_amounts = pay.amount[~pay.user_id.isin(_fraud_ids(data))]
    assert len(late_amounts) >= len(late)  # each makes at least one payment
    assert abs(late_amounts.median() - legit_amounts.median()) < 0.5 * legit_amounts.median()


def test_graph_only_marks_exactly_the_late_joiners(data: Loaded) -> None:
    signup = _signup_times(data)
    cut = START + timedelta(days=CONFIG.days * LATE_JOIN_FROM)
    users = data.users
    late = set(users.user_id[(users.ring_id != "") & (users.user_id.map(signup) >= cut)])
    marked = set(users.user_id[users.graph_only == "1"])
    assert marked == late
    assert set(users.graph_only) <= {"0", "1"}


def test_shared_ip_rule_has_poor_precision(data: Loaded) -> None:
    """"IP used by >= 10 accounts => fraud" must be a bad rule on this data (hard negatives)."""
    ev = data.events
    per_ip = ev[ev.ip != ""].groupby("ip").user_id.nunique()
    flagged = set(ev.user_id[ev.ip.isin(per_ip[per_ip >= 10].index)])
    precision = len(flagged & _fraud_ids(data)) / len(flagged)
    assert precision < 0.3
    big = data.idents[data.idents.role.isin(["office_ip", "campus_ip", "carrier_nat_ip"])]
    assert (per_ip[big.identifier] >= 10).all()


def test_card_testing_makes_tiny_declined_bursts(data: Loaded) -> None:
    ev = data.events
    testers = set(data.users.user_id[data.users.ring_kind == "card_testing"])
    pay = ev[(ev.event == "payment") & ev.user_id.isin(testers)]
    tiny = pay[pay.amount.astype(float) <= 2.0]
    assert len(tiny) > 0.5 * len(pay)
    assert (tiny.status == "declined").mean() > 0.5
    merchants = set(data.idents.identifier[data.idents.role == "card_testing_merchant"])
    assert tiny.merchant_id.isin(merchants).mean() > 0.9


def test_mule_chains_are_connected_through_link_identifiers(data: Loaded) -> None:
    ev = data.events
    links = set(data.idents.identifier[data.idents.role.isin(["mule_device", "mule_ip"])])
    mules = data.users[data.users.ring_kind == "mule_chain"]
    for ring_id, group in mules.groupby("ring_id"):
        sub = ev[ev.user_id.isin(group.user_id)]
        pairs = pd.concat([sub[["user_id", "device_id"]].set_axis(["u", "x"], axis=1),
                           sub[["user_id", "ip"]].set_axis(["u", "x"], axis=1)])  # fmt: skip
        pairs = pairs[pairs.x.isin(links)].drop_duplicates()
        # Union-find over members joined by a shared link identifier.
        parent = {u: u for u in group.user_id}

        def find(u: str) -> str:
            while parent[u] != u:
                u = parent[u]
            return u

        for _, users in pairs.groupby("x").u:
            first, *rest = users.tolist()
            for other in rest:
                parent[find(other)] = find(first)
        assert len({find(u) for u in parent}) == 1, ring_id


def test_colluding_merchants_get_round_amounts_from_their_ring(data: Loaded) -> None:
    ev = data.events
    ring_of = data.users.set_index("user_id").ring_id
    for merchant in data.idents.identifier[data.idents.role == "colluding_merchant"]:
        pay = ev[(ev.merchant_id == merchant) & (ev.event == "payment")]
        rings = ring_of[pay.user_id].reset_index(drop=True)
        top = rings[rings != ""].value_counts()
        ring_pay = pay[(rings == top.index[0]).to_numpy()]
        assert ring_pay.user_id.nunique() >= 3
        # The ring brings most of the merchant's money.
        assert ring_pay.amount.astype(float).sum() > 0.5 * pay.amount.astype(float).sum()
        assert ring_pay.amount.str.endswith("0.00").mean() > 0.9


# ------------------------------------------------------------------------------------------
# data: labels
# ------------------------------------------------------------------------------------------


def test_labels_reveal_about_label_reveal_of_fraud(data: Loaded) -> None:
    fraud = _fraud_ids(data)
    lab = data.labels
    charged = lab[(lab.entity == "user") & (lab.label == "fraud")]
    assert charged.entity_id.is_unique
    revealed = set(charged.entity_id) & fraud
    assert abs(len(revealed) / len(fraud) - CONFIG.label_reveal) < 0.05
    assert set(lab.source) == {"chargeback", "investigator"}
    txn_cb = lab[lab.entity == "transaction"]
    assert len(txn_cb) > 0 and txn_cb.entity_id.isin(data.events.txn_id).all()


def test_some_labels_arrive_after_the_period(data: Loaded) -> None:
    ts = pd.to_datetime(data.labels.ts, utc=True)
    assert (ts >= END).sum() > 0 and (ts < END).sum() > 0
    assert ts.is_monotonic_increasing


def test_label_noise_both_ways(data: Loaded) -> None:
    fraud = _fraud_ids(data)
    lab = data.labels
    users = lab[lab.entity == "user"]
    wrong_fraud = users[(users.label == "fraud") & ~users.entity_id.isin(fraud)]
    assert len(wrong_fraud) >= 1
    latest = users.groupby("entity_id").tail(1)  # file is sorted by ts: the last verdict wins
    cleared = latest[(latest.label == "legit") & latest.entity_id.isin(fraud)]
    assert len(cleared) >= 1
    victims = set(_stolen(data).user_id)  # cleared on purpose (see the stolen-card tests)
    legit_confirmed = latest[(latest.label == "legit") & ~latest.entity_id.isin(fraud | victims)]
    n_legit = len(data.users) - len(fraud)
    assert 0.01 * n_legit <= len(legit_confirmed) <= 0.03 * n_legit
