"""Q-network: published key layout, parameter count, shared forward/backward LSTM cell."""
import numpy as np
import pytest
import torch

from agent.qnet import NUM_PARAMETERS, QNet, load_agent

PUBLISHED_SHAPES = {
    "encoder_fc1.weight": (128, 2), "encoder_fc1.bias": (128,),
    "encoder_fc2.weight": (128, 128), "encoder_fc2.bias": (128,),
    "lstm_cell.weight_ih": (512, 128), "lstm_cell.weight_hh": (512, 128),
    "decoder_fc1.weight": (128, 256), "decoder_fc1.bias": (128,),
    "decoder_fc2.weight": (1, 128), "decoder_fc2.bias": (1,),
}


def test_parameter_count():
    assert sum(p.numel() for p in QNet().parameters()) == NUM_PARAMETERS == 180_993
    assert sum(int(np.prod(s)) for s in PUBLISHED_SHAPES.values()) == 180_993


def test_published_key_layout_loads_strictly(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {"module." + k: torch.randn(s, generator=g) * 0.1 for k, s in PUBLISHED_SHAPES.items()}
    path = tmp_path / "agent.pt"
    torch.save(sd, path)
    net = load_agent(path, "cpu")
    assert not net.training
    for k, v in sd.items():
        assert torch.equal(net.state_dict()[k[len("module."):]], v)
    q = net(torch.rand(4, 25, 2))
    assert q.shape == (4, 25)
    assert torch.isfinite(q).all()

    sd["module.extra.weight"] = torch.zeros(1)   # strict: an unknown key is an error
    torch.save(sd, path)
    with pytest.raises(RuntimeError):
        load_agent(path, "cpu")


def _np_cell(x, h, c, w_ih, w_hh):
    """LSTMCell without bias, gate order (input, forget, cell, output) as in torch."""
    def sig(z):
        return 1 / (1 + np.exp(-z))
    gates = w_ih @ x + w_hh @ h
    i, f, g, o = np.split(gates, 4)
    c = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c), c


def test_forward_and_backward_share_one_cell():
    torch.manual_seed(3)
    net = QNet().double()
    W = {k: v.numpy() for k, v in net.state_dict().items()}
    state = np.array([[0.9, 0.0], [0.2, 1.0], [0.5, 2.0]])   # 3 frames: [quality, count]

    def relu(z):
        return np.maximum(z, 0)
    x = [W["encoder_fc2.weight"] @ relu(W["encoder_fc1.weight"] @ s + W["encoder_fc1.bias"]) + W["encoder_fc2.bias"]
         for s in state]
    w_ih, w_hh = W["lstm_cell.weight_ih"], W["lstm_cell.weight_hh"]
    h_fw, h, c = [], np.zeros(128), np.zeros(128)
    for t in range(3):
        h, c = _np_cell(x[t], h, c, w_ih, w_hh)
        h_fw.append(h)
    h_bw, h, c = [None] * 3, np.zeros(128), np.zeros(128)
    for t in (2, 1, 0):
        h, c = _np_cell(x[t], h, c, w_ih, w_hh)   # same weights, reversed order
        h_bw[t] = h
    expected = [
        (W["decoder_fc2.weight"] @ relu(W["decoder_fc1.weight"] @ relu(np.concatenate([h_fw[t], h_bw[t]]))
                                        + W["decoder_fc1.bias"]) + W["decoder_fc2.bias"])[0]
        for t in range(3)
    ]
    got = net(torch.from_numpy(state)[None])[0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    # the middle frame's output differs from a one-way scan's: both directions are used
    assert not np.allclose(h_fw[1], h_bw[1])


def test_ours_selector_takes_argmax_of_the_state_built_from_the_context(tmp_path):
    from types import SimpleNamespace

    from agent.recommender import AgentSelector

    torch.manual_seed(1)
    net = QNet()
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, tmp_path / "agent.pt")
    sel = AgentSelector.from_weights(tmp_path / "agent.pt", "cpu")
    assert (sel.name, sel.needs_quality) == ("ours", True)
    quality = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    counts = np.array([1, 0, 0, 2, 0])
    ctx = SimpleNamespace(quality=quality, counts=counts, num_frames=5)
    state = torch.tensor(np.stack([quality, counts], 1), dtype=torch.float32)[None]
    assert sel(ctx) == int(net(state)[0].argmax())
    with pytest.raises(ValueError):
        sel(SimpleNamespace(quality=None, counts=counts, num_frames=5))


def test_fused_bidirectional_pass_equals_the_explicit_loops():
    """The fused kernel call must give the forward and backward scans of the one shared cell,
    values and gradients."""
    torch.manual_seed(0)
    net = QNet()
    x = torch.randn(3, 7, net.hidden)
    ref = torch.cat([net._scan(x, reverse=False), net._scan(x, reverse=True)], dim=-1)
    got = net._bidirectional(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    w = net.lstm_cell.weight_hh
    g_ref = torch.autograd.grad(ref.square().sum(), w)[0]
    g_got = torch.autograd.grad(net._bidirectional(x).square().sum(), w)[0]
    torch.testing.assert_close(g_got, g_ref, rtol=1e-4, atol=1e-5)
