"""TACO: temporal action-driven contrastive loss between (state, action sequence) and the future state."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssl_core.losses._common import check_pair, gather


def taco(
    context: torch.Tensor, future: torch.Tensor, weight: torch.Tensor | None = None, gather_distributed: bool = False
) -> torch.Tensor:
    r"""InfoNCE between state-action representations and future-state representations (TACO; Zheng et al., 2023).

    TACO maximises :math:`I(Z_{t+K}; [Z_t, U_t, \dots, U_{t+K-1}])`: ``context[i]`` is the projection
    :math:`G(z_t, u_{t:t+K})` of a state with the latent actions taken from it, ``future[i]`` the projection
    :math:`H(z_{t+K})` of the state reached ``K`` steps later, and the other futures of the batch are the
    negatives. Scores are bilinear, :math:`g_i^\top W h_j`, as in the authors' ``compute_logits`` (taken from
    CURL), or dot products without ``weight``:

    .. math:: L = -\frac1N\sum_i \log \frac{\exp(g_i^\top W h_i)}{\sum_j \exp(g_i^\top W h_j)}

    Args:
        context: :math:`G(z_t, u_t, \dots, u_{t+K-1})` for each sampled time step.
        future: :math:`H(z_{t+K})`, row ``i`` the future of ``context[i]`` (TACO encodes it without gradient).
        weight: the bilinear :math:`W` (see :class:`TACOLoss`); identity if None.
        gather_distributed: take negative futures from every rank.

    Shapes:
        - context, future: ``(N, D)``
        - weight: ``(D, D)``
        - output: scalar
    """
    check_pair(context, future, "taco")
    futures, offset = gather(future, gather_distributed)
    keys = futures if weight is None else futures @ weight.T  # rows W h_j: (N_all, D)
    logits = context @ keys.T  # (n, N_all)
    return F.cross_entropy(logits, torch.arange(len(context), device=context.device) + offset)


class TACOLoss(nn.Module):
    """TACO's contrastive head: the state-action projection ``G``, the bilinear ``W`` and :func:`taco`.

    ``G`` is TACO's ``proj_sa``, an MLP on the concatenated state representation and the ``K`` latent
    actions; ``W`` is initialised uniformly in [0, 1) as in the authors' code. The state encoder, the action
    encoder and ``H`` (the future state's projection) belong to the method.

    Args:
        state_dim: size of the state representation :math:`z_t` (and of ``G``'s output).
        action_dim: size of one latent action :math:`u`.
        horizon: number ``K`` of actions between the state and the future state.
        hidden_dim: hidden width of ``G``.
        gather_distributed: take negative futures from every rank.
    """

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        horizon: int = 1,
        hidden_dim: int = 1024,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        self.horizon, self.gather_distributed = horizon, gather_distributed
        self.project_state_action = nn.Sequential(
            nn.Linear(state_dim + action_dim * horizon, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, state_dim)
        )
        self.weight = nn.Parameter(torch.rand(state_dim, state_dim))

    def forward(self, state: torch.Tensor, actions: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        """Loss of states with their next ``K`` latent actions against the future states.

        Args:
            state: :math:`z_t`, ``(N, state_dim)``.
            actions: :math:`u_{t:t+K}`, ``(N, K, action_dim)``.
            future: :math:`H(z_{t+K})`, ``(N, state_dim)``.
        """
        if actions.ndim != 3 or actions.shape[:2] != (state.shape[0], self.horizon):
            raise ValueError(f"actions must be (N, K={self.horizon}, action_dim), got {tuple(actions.shape)}")
        context = self.project_state_action(torch.cat([state, actions.flatten(1)], dim=1))
        return taco(context, future, self.weight, self.gather_distributed)
