"""How a new item's text-mapped score is put on the warm items' scale (``cold_scale``; docs/cold-items.md).

The heads' text -> CF maps (``_cold_map``) align directions, not lengths, so a mapped row is first made a unit
vector ``m_i``; its score for user ``u`` is then ``a * <e_u, m_i> + b``. Both rules are fitted on training data
only, and ``a > 0`` in both, so the order among new items (the cold ranking) is the same under either: the rule only
decides where they fall among the warm items (the all ranking).

* ``median_norm``: ``a`` = the median L2 norm of the warm items' scoring rows, ``b = 0`` (the row gets a typical
  warm item's length).
* ``affine``: warm items act as pseudo-cold items: their own text rows go through the same map, and ``a, b`` are the
  least-squares fit of the model's real score ``<e_u, e_i>`` on the pseudo-cold score ``<e_u, m_i>`` over the
  training pairs plus as many random (user, warm item) pairs (drawn from a fixed seed, without touching the global
  random streams).
"""
import logging

import torch

SCALE_RULES = ("median_norm", "affine")
MIN_SLOPE = 1e-6  # a map that does not agree with the model's scores at all still keeps the cold order


def check_cold_scale(value):
    if value not in SCALE_RULES:
        raise ValueError(f"invalid config cold_scale={value!r}: must be one of {', '.join(SCALE_RULES)}")
    return value


def median_norm(item_all, warm):
    return item_all[warm].norm(dim=1).median(), item_all.new_zeros(())


def affine(user_all, item_all, unit_rows, warm, pair_users, pair_items, seed=0):
    """``(a, b)`` of the least-squares fit (module docstring). ``unit_rows``: every item's mapped text row (unit
    length; zero for items without text); ``warm``: items with a training interaction and a text row."""
    generator = torch.Generator().manual_seed(seed)
    warm_ids = warm.nonzero().flatten().cpu()
    keep = warm[pair_items]
    users, items = pair_users[keep].cpu(), pair_items[keep].cpu()
    rand_users = users[torch.randint(len(users), (len(users),), generator=generator)]
    rand_items = warm_ids[torch.randint(len(warm_ids), (len(users),), generator=generator)]
    users = torch.cat([users, rand_users]).to(user_all.device)
    items = torch.cat([items, rand_items]).to(user_all.device)
    x = (user_all[users] * unit_rows[items]).sum(1).double()
    y = (user_all[users] * item_all[items]).sum(1).double()
    slope = ((x - x.mean()) * (y - y.mean())).mean() / (x.var(unbiased=False) + 1e-12)
    if slope < MIN_SLOPE:
        logging.getLogger().warning(f"cold_scale=affine: the mapped scores do not rise with the model's scores "
                                    f"(fitted slope {float(slope):.3g}); slope {MIN_SLOPE:g} used")
        slope = x.new_tensor(MIN_SLOPE)
    return slope.to(item_all.dtype), (y.mean() - slope * x.mean()).to(item_all.dtype)
