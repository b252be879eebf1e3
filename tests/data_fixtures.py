"""Small generated stand-in datasets shared by tests (imported by test_eval_batch_size / test_rlmrec_configs)."""
import numpy as np


def write_random_inter(root, name, n_users, n_items, per_user, seed):
    """Write ``root/name/name.inter``: user ``u<k>`` with ``per_user`` distinct random items ``i<j>`` (an int, or a
    ``(low, high)`` range drawn per user); returns ``root``."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token"]
    for u in range(n_users):
        size = rng.integers(*per_user) if isinstance(per_user, tuple) else per_user
        lines += [f"u{u}\ti{i}" for i in rng.choice(n_items, size=size, replace=False)]
    (root / name).mkdir()
    (root / name / f"{name}.inter").write_text("\n".join(lines) + "\n")
    return root
