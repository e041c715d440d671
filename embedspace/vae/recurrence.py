"""A GRU recurrence for training on a CPU: the same numbers as ``nn.GRU``, less overhead.

``nn.GRU`` on a CPU records every time step's gate arithmetic in the autograd graph and,
going backwards, adds each step's rank-B weight gradient into the accumulator one step
at a time. Here one autograd node covers the whole recurrence: the forward pass keeps
the few per-step tensors the gradient needs, the backward pass walks the steps with plain
tensor arithmetic, and the recurrent weight gradient is one (3H, T*B) x (T*B, H) product
at the end. Several directions (a bidirectional encoder's two) run in the same loop as a
batch of matrix products. The input projections (``x W_ih^T + b_ih``) are ordinary
autograd operations outside it.

The gates follow PyTorch's definition (and parameter layout, so ``nn.GRU`` state dicts
load unchanged)::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

Shapes: ``D`` directions, ``T`` steps, ``B`` batch, ``H`` state size, ``I`` input size.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["gru_recurrence", "gru_layer", "bidirectional_final_states"]


class _GRURecurrence(torch.autograd.Function):
    """(T, D, B, 3H) input gates, (D, B, H) first state -> (T, D, B, H) states."""

    @staticmethod
    def forward(ctx, gates_x, h0, weight_hh, bias_hh):
        steps, hidden = gates_x.shape[0], h0.shape[-1]
        weight_t = weight_hh.transpose(1, 2)  # (D, H, 3H)
        bias = bias_hh.unsqueeze(1)  # (D, 1, 3H)
        shape = gates_x.shape[:3]
        states = gates_x.new_empty(shape + (hidden,))
        gates_h = gates_x.new_empty(shape + (3 * hidden,))  # h W_hh^T + b_hh of every step
        rz_all = gates_x.new_empty(shape + (2 * hidden,))
        n_all = torch.empty_like(states)
        h = h0
        for t in range(steps):
            gh = torch.baddbmm(bias, h, weight_t, out=gates_h[t])  # (D, B, 3H)
            gx = gates_x[t]
            rz = torch.sigmoid(torch.add(gx[..., : 2 * hidden], gh[..., : 2 * hidden], out=rz_all[t]), out=rz_all[t])
            n = torch.tanh(torch.addcmul(gx[..., 2 * hidden:], rz[..., :hidden], gh[..., 2 * hidden:], out=n_all[t]), out=n_all[t])
            h = torch.lerp(n, h, rz[..., hidden:], out=states[t])
        ctx.save_for_backward(h0, weight_hh, states, rz_all, n_all, gates_h)
        return states

    @staticmethod
    def backward(ctx, grad_states):
        h0, weight_hh, states, rz_all, n_all, gates_h = ctx.saved_tensors
        steps, directions, hidden = states.shape[0], states.shape[1], h0.shape[-1]
        grad_gx = gates_h.new_empty(gates_h.shape)  # d loss / d gates_x
        grad_gh = gates_h.new_empty(gates_h.shape)  # d loss / d gates_h
        dh = torch.zeros_like(h0)
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_states[t]
            h_prev = states[t - 1] if t > 0 else h0
            r, z = rz_all[t, ..., :hidden], rz_all[t, ..., hidden:]
            n, hn = n_all[t], gates_h[t, ..., 2 * hidden:]
            dhz = dh * z
            da_n = torch.mul(dh - dhz, 1.0 - n * n, out=grad_gx[t, ..., 2 * hidden:])
            torch.mul(da_n * hn, r * (1.0 - r), out=grad_gx[t, ..., :hidden])
            torch.mul(dh * (h_prev - n), z * (1.0 - z), out=grad_gx[t, ..., hidden: 2 * hidden])
            grad_gh[t, ..., : 2 * hidden] = grad_gx[t, ..., : 2 * hidden]
            torch.mul(da_n, r, out=grad_gh[t, ..., 2 * hidden:])
            dh = torch.baddbmm(dhz, grad_gh[t], weight_hh)  # (D, B, H)
        previous = torch.cat([h0.unsqueeze(0), states[:-1]])  # (T, D, B, H)
        grad_weight = torch.stack([
            grad_gh[:, d].reshape(-1, 3 * hidden).t().mm(previous[:, d].reshape(-1, hidden)) for d in range(directions)
        ])  # (D, 3H, H)
        grad_bias = grad_gh.sum((0, 2))
        return grad_gx, dh, grad_weight, grad_bias


def gru_recurrence(gates_x: torch.Tensor, h0: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor) -> torch.Tensor:
    """Run the recurrence of ``D`` GRU layers side by side.

    Parameters
    ----------
    gates_x : FloatTensor of shape (T, D, B, 3H)
        ``x W_ih^T + b_ih`` of every step.
    h0 : FloatTensor of shape (D, B, H)
    weight_hh : FloatTensor of shape (D, 3H, H)
    bias_hh : FloatTensor of shape (D, 3H)

    Returns
    -------
    FloatTensor of shape (T, D, B, H)
        The state after every step.
    """
    return _GRURecurrence.apply(gates_x.contiguous(), h0.contiguous(), weight_hh, bias_hh)


def gru_layer(rnn: nn.GRU, inputs: torch.Tensor, h0: torch.Tensor, *, weight_drop: float = 0.0) -> torch.Tensor:
    """``rnn(inputs, h0)[0]`` for a one-layer, one-direction, batch-first ``nn.GRU``.

    Parameters
    ----------
    rnn : nn.GRU
    inputs : FloatTensor of shape (B, T, I)
    h0 : FloatTensor of shape (1, B, H)
    weight_drop : float, default=0
        DropConnect on the recurrent weights (Wan et al. 2013; the AWD-LSTM's weight drop,
        Merity et al. 2018): each entry of ``W_hh`` is zeroed with this probability (the
        rest scaled by 1 / (1 - p)), one mask for the whole batch and every step. For
        training; 0 leaves the weights as they are.

    Returns
    -------
    FloatTensor of shape (B, T, H)
    """
    gates_x = nn.functional.linear(inputs.transpose(0, 1), rnn.weight_ih_l0, rnn.bias_ih_l0)  # (T, B, 3H)
    weight_hh = rnn.weight_hh_l0
    if weight_drop > 0:
        weight_hh = nn.functional.dropout(weight_hh, weight_drop, training=True)
    states = gru_recurrence(gates_x.unsqueeze(1), h0, weight_hh.unsqueeze(0), rnn.bias_hh_l0.unsqueeze(0))
    return states[:, 0].transpose(0, 1)


def bidirectional_final_states(rnn: nn.GRU, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Final states of a one-layer, bidirectional, batch-first ``nn.GRU`` over padded sequences.

    The same as running ``rnn`` on the packed sequences: the forward direction's state
    after each sequence's last real step and the backward direction's after its first.

    Parameters
    ----------
    rnn : nn.GRU
    inputs : FloatTensor of shape (B, T, I)
    lengths : LongTensor of shape (B,)
        Real steps per sequence (1..T); the rest is padding.

    Returns
    -------
    FloatTensor of shape (2, B, H)
        Forward, backward, as ``rnn``'s final state.
    """
    batch, steps = inputs.shape[:2]
    position = torch.arange(steps).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    # Each sequence's real steps reversed in place; padding stays after them.
    reverse_index = torch.where(position <= last, last - position, position)  # (B, T)
    reversed_inputs = inputs.gather(1, reverse_index.unsqueeze(-1).expand_as(inputs))
    gates_x = torch.stack([
        nn.functional.linear(inputs.transpose(0, 1), rnn.weight_ih_l0, rnn.bias_ih_l0),
        nn.functional.linear(reversed_inputs.transpose(0, 1), rnn.weight_ih_l0_reverse, rnn.bias_ih_l0_reverse),
    ], dim=1)  # (T, 2, B, 3H)
    weight_hh = torch.stack([rnn.weight_hh_l0, rnn.weight_hh_l0_reverse])
    bias_hh = torch.stack([rnn.bias_hh_l0, rnn.bias_hh_l0_reverse])
    h0 = inputs.new_zeros(2, batch, rnn.hidden_size)
    states = gru_recurrence(gates_x, h0, weight_hh, bias_hh)  # (T, 2, B, H)
    index = (lengths - 1).view(1, 1, batch, 1).expand(1, 2, batch, rnn.hidden_size)
    return states.gather(0, index).squeeze(0)
