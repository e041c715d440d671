"""The training-time GRU recurrence against torch's own ``nn.GRU`` (the exact reference)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

from embedspace.vae.recurrence import bidirectional_final_states, gru_layer  # noqa: E402


def _grads(module, *tensors):
    grads = [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in tensors]
    module.zero_grad()
    for t in tensors:
        t.grad = None
    return grads


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_decoder_layer_matches_nn_gru_outputs_and_gradients(dtype, tol):
    torch.manual_seed(0)
    rnn = torch.nn.GRU(6, 5, batch_first=True).to(dtype)
    inputs = torch.randn(4, 9, 6, dtype=dtype, requires_grad=True)
    h0 = torch.randn(1, 4, 5, dtype=dtype, requires_grad=True)
    weights = torch.randn(4, 9, 5, dtype=dtype)
    expected, _ = rnn(inputs, h0)
    (expected * weights).sum().backward()
    expected_grads = _grads(rnn, inputs, h0)
    got = gru_layer(rnn, inputs, h0)
    (got * weights).sum().backward()
    got_grads = _grads(rnn, inputs, h0)
    assert torch.allclose(got, expected, atol=tol, rtol=0)
    for a, b in zip(got_grads, expected_grads):
        assert torch.allclose(a, b, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_bidirectional_final_states_match_packed_nn_gru(dtype, tol):
    torch.manual_seed(1)
    rnn = torch.nn.GRU(6, 5, batch_first=True, bidirectional=True).to(dtype)
    lengths = torch.tensor([7, 3, 1, 5, 7])
    inputs = torch.randn(5, 7, 6, dtype=dtype, requires_grad=True)
    with torch.no_grad():  # padding must not matter
        inputs[1, 3:] = 1e3
    weights = torch.randn(2, 5, 5, dtype=dtype)
    _, expected = rnn(pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False))
    (expected * weights).sum().backward()
    expected_grads = _grads(rnn, inputs)
    got = bidirectional_final_states(rnn, inputs, lengths)
    (got * weights).sum().backward()
    got_grads = _grads(rnn, inputs)
    assert torch.allclose(got, expected, atol=tol, rtol=0)
    for a, b in zip(got_grads, expected_grads):
        assert torch.allclose(a, b, atol=tol, rtol=0)


def test_gradcheck_of_the_recurrence():
    from embedspace.vae.recurrence import gru_recurrence

    torch.manual_seed(2)
    steps, directions, batch, hidden = 4, 2, 3, 2
    args = (
        torch.randn(steps, directions, batch, 3 * hidden, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, batch, hidden, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, 3 * hidden, hidden, dtype=torch.float64, requires_grad=True),
        torch.randn(directions, 3 * hidden, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(gru_recurrence, args)


def test_weight_drop_is_nn_gru_with_one_dropped_out_w_hh_for_the_whole_batch():
    import copy

    torch.manual_seed(0)
    rnn = torch.nn.GRU(6, 5, batch_first=True).double()
    inputs = torch.randn(4, 9, 6, dtype=torch.float64)
    h0 = torch.randn(1, 4, 5, dtype=torch.float64)
    weights = torch.randn(4, 9, 5, dtype=torch.float64)
    torch.manual_seed(1)
    got = gru_layer(rnn, inputs, h0, weight_drop=0.5)
    (got * weights).sum().backward()
    torch.manual_seed(1)  # the same draw: the mask gru_layer used
    mask = torch.nn.functional.dropout(torch.ones_like(rnn.weight_hh_l0), 0.5, training=True)  # 0 or 2
    assert 0 < int((mask == 0).sum()) < mask.numel()
    reference = copy.deepcopy(rnn)
    reference.zero_grad()
    with torch.no_grad():
        reference.weight_hh_l0.mul_(mask)
    expected, _ = reference(inputs, h0)
    (expected * weights).sum().backward()
    assert torch.allclose(got, expected, atol=1e-12, rtol=0)
    # d loss / d W_hh = mask * d loss / d (masked W_hh): dropped entries learn nothing this batch.
    assert torch.allclose(rnn.weight_hh_l0.grad, mask * reference.weight_hh_l0.grad, atol=1e-12, rtol=0)
    assert torch.equal(gru_layer(rnn, inputs, h0, weight_drop=0.0), gru_layer(rnn, inputs, h0))
