"""The memory-saving paths of ``RingSAGE`` compute the same function as the plain ones:
layer-wise, chunked inference (``predict``) equals one full-batch forward, and checkpointed
training (message-passing layers and the chunked edge head) gives the same gradients."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gnn.artefact.model_artefact import ModelArtefact
from gnn.core.features import Normalisation, build_features
from gnn.core.model import GraphInput, RingSAGE, build_graph_input, predict
from gnn.serving.scoring import load_model
from tests.gnn.synth import SynthData


def _graph(art: ModelArtefact, synth: SynthData) -> GraphInput:
    return build_graph_input(synth.snapshot, art.normalisation.apply(build_features(synth.snapshot)))


def test_edges_are_ordered_by_destination(trained: ModelArtefact, synth: SynthData) -> None:
    g = _graph(trained, synth)
    for rel, ei in g.edge_index_dict.items():
        dst = ei[1].numpy()
        assert (np.diff(dst) >= 0).all(), rel


def test_chunked_layerwise_predict_equals_full_batch_forward(trained: ModelArtefact, synth: SynthData) -> None:
    model = load_model(trained, "cpu")
    g = _graph(trained, synth)
    with torch.no_grad():
        user_logits, txn_logits, emb = model(g)  # eval mode: one full-batch forward
    cfg = model.config
    want_acc = torch.sigmoid(user_logits.double() - cfg.user_prior_shift).numpy()
    want_txn = torch.sigmoid(txn_logits.double() - cfg.txn_prior_shift).numpy()
    # Chunks far smaller than the graph, and not dividing it, so every boundary case is hit.
    got = predict(model, g, node_chunk=7, txn_chunk=13)
    assert got.account.shape == want_acc.shape and got.txn.shape == want_txn.shape
    assert np.allclose(got.account, want_acc, rtol=1e-5, atol=1e-6)
    assert np.allclose(got.txn, want_txn, rtol=1e-5, atol=1e-6)
    assert np.allclose(got.embeddings, emb.numpy(), rtol=1e-5, atol=1e-6)
    rows = torch.tensor([5, 0, len(synth.snapshot.transactions) - 1, 5])
    sub = predict(model, g, rows, txn_chunk=3)
    assert np.allclose(sub.txn, want_txn[rows.numpy()], rtol=1e-5, atol=1e-6)
    assert not model.training


def _grads(model: RingSAGE, g: GraphInput, rows: torch.Tensor, y_user: torch.Tensor, y_txn: torch.Tensor, **kw: int) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model.train()
    torch.manual_seed(3)  # same dropout masks and hidden accounts in both runs
    h = model.embed(g.x_dict, g.edge_index_dict)
    user_logits = model.user_head(h["user"]).squeeze(-1)
    loss = F.binary_cross_entropy_with_logits(user_logits, y_user)
    loss = loss + F.binary_cross_entropy_with_logits(model.txn_logits(h, g, rows, **kw), y_txn[rows])
    loss.backward()
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_checkpointed_training_gives_the_same_gradients(trained: ModelArtefact, synth: SynthData) -> None:
    feats = build_features(synth.snapshot)
    g = build_graph_input(synth.snapshot, Normalisation.fit(feats).apply(feats))
    model = load_model(trained, "cpu")
    for p in model.parameters():
        p.requires_grad_(True)
    n_user, n_txn = g.data["user"].x.shape[0], g.txn_x.shape[0]
    gen = torch.Generator().manual_seed(0)
    y_user = (torch.rand(n_user, generator=gen) < 0.1).float()
    y_txn = (torch.rand(n_txn, generator=gen) < 0.1).float()
    rows = torch.randperm(n_txn, generator=gen)[: n_txn // 2]
    model.checkpoint_nodes = model.checkpoint_txns = 10**12
    plain = _grads(model, g, rows, y_user, y_txn, chunk=10**9)
    model.checkpoint_nodes = model.checkpoint_txns = 0  # checkpoint every layer, the head in chunks of 17
    ckpt = _grads(model, g, rows, y_user, y_txn, chunk=17)
    assert plain.keys() == ckpt.keys() and len(plain) == len(list(model.parameters()))
    for k in plain:
        assert torch.allclose(plain[k], ckpt[k], rtol=1e-4, atol=1e-6), k
