"""DeepSeek's EPLB algorithm (deepseek-ai/EPLB) in plain numpy, for tests and comparisons.

Written from the algorithm's description, not for speed: it is the yardstick the C++ policy is
checked against (same placement, or the same imbalance where float ties break differently).

    1. (hierarchical only) pack expert groups onto nodes, balancing node load;
    2. replicate: give each extra slot of a node to the expert with the highest load per
       replica;
    3. pack: place replicas heaviest first on the lightest GPU of the node that has room.

Global mode is the same with one group and one node. Like the reference, loads are rounded to
float32 first and a GPU may receive two replicas of one expert. Ties break by the lower index
everywhere (stable sorts), which is also what the C++ policy does.

Shapes follow the reference: weight [L][E]; phy2log [L][R]; log2phy [L][E][max_replicas] padded
with -1, where the k-th column is the k-th replica in creation order; logcnt [L][E]; int64.
"""

import numpy as np

__all__ = ["balanced_packing", "replicate_experts", "rebalance_experts"]


def balanced_packing(weight, num_packs):
    """Packs the items of every row into num_packs packs of equal item count.

    weight: [X][n] with n % num_packs == 0. Items go heaviest first (ties: lower index) to the
    lightest pack that still has room (ties: lower pack).
    Returns pack_index [X][n] and rank_in_pack [X][n] (position within the pack), int64.
    """
    rows, n = weight.shape
    if n % num_packs != 0:
        raise ValueError("items (%d) must divide evenly over packs (%d)" % (n, num_packs))
    capacity = n // num_packs
    pack_index = np.full((rows, n), -1, dtype=np.int64)
    rank_in_pack = np.full((rows, n), -1, dtype=np.int64)
    if capacity == 1:
        pack_index[:] = np.arange(n)
        rank_in_pack[:] = 0
        return pack_index, rank_in_pack
    order = np.argsort(-weight, axis=-1, kind="stable")
    for x in range(rows):
        load = np.zeros(num_packs, dtype=np.float64)
        count = np.zeros(num_packs, dtype=np.int64)
        w = weight[x]
        for item in order[x]:
            open_load = np.where(count < capacity, load, np.inf)
            pack = int(np.argmin(open_load))  # first minimum: lower pack on ties
            pack_index[x, item] = pack
            rank_in_pack[x, item] = count[pack]
            load[pack] += w[item]
            count[pack] += 1
    return pack_index, rank_in_pack


def replicate_experts(weight, num_phy):
    """Grows num_log experts to num_phy replicas, each extra one to the highest load per replica.

    weight: [X][num_log]. Returns phy2log [X][num_phy] (the first num_log are the experts
    themselves), replica_rank [X][num_phy] (0 for the original, then 1, 2, ... in creation
    order) and logcnt [X][num_log].
    """
    rows, num_log = weight.shape
    if num_phy < num_log:
        raise ValueError("fewer slots (%d) than experts (%d)" % (num_phy, num_log))
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (rows, 1))
    replica_rank = np.zeros((rows, num_phy), dtype=np.int64)
    logcnt = np.ones((rows, num_log), dtype=np.int64)
    row_ids = np.arange(rows)
    for i in range(num_log, num_phy):
        best = np.argmax(weight / logcnt, axis=-1)  # first maximum: lower expert on ties
        phy2log[:, i] = best
        replica_rank[:, i] = logcnt[row_ids, best]
        logcnt[row_ids, best] += 1
    return phy2log, replica_rank, logcnt


def _inverse(perm):
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.arange(perm.shape[1], dtype=perm.dtype)[None, :].repeat(
        perm.shape[0], axis=0), axis=1)
    return inv


def _hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus):
    layers, num_log = weight.shape
    if num_log % num_groups or num_groups % num_nodes or num_gpus % num_nodes or num_phy % num_gpus:
        raise ValueError("groups, nodes, GPUs and slots do not divide evenly")
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    slots_per_gpu = num_phy // num_gpus
    log_per_node = num_log // num_nodes

    # 1. Groups onto nodes; "mlog" numbers experts node by node.
    group_load = weight.reshape(layers, num_groups, group_size).sum(-1)
    group_pack, group_rank = balanced_packing(group_load, num_nodes)
    log2mlog = ((group_pack * groups_per_node + group_rank) * group_size)[:, :, None] + np.arange(
        group_size)[None, None, :]
    log2mlog = log2mlog.reshape(layers, num_log)
    mlog2log = _inverse(log2mlog)

    # 2. Replicas within each node.
    mlog_load = np.take_along_axis(weight, mlog2log, axis=-1).reshape(-1, log_per_node)
    phy2mlog, phy_rank, mlogcnt = replicate_experts(mlog_load, num_phy // num_nodes)

    # 3. Replicas onto the GPUs of their node.
    phy_load = np.take_along_axis(mlog_load / mlogcnt, phy2mlog, axis=-1)
    pack, pos = balanced_packing(phy_load, num_gpus // num_nodes)
    phy2pphy = pack * slots_per_gpu + pos
    pphy2phy = _inverse(phy2pphy)

    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=-1)
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) +
                 np.arange(0, num_log, log_per_node)[None, :, None]).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=-1)
    pphy_rank = np.take_along_axis(phy_rank, pphy2phy, axis=-1).reshape(layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, axis=-1)
    return pphy2log, pphy_rank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus, dtype=np.float32):
    """deepseek-ai/EPLB's entry point. weight: [L][E] loads.

    Hierarchical when num_groups % num_nodes == 0, else global (one group, one node).
    Returns phy2log [L][num_replicas], log2phy [L][E][max_replicas] (-1 padded), logcnt [L][E].
    """
    weight = np.asarray(weight).astype(dtype)
    layers, num_log = weight.shape
    if num_groups % num_nodes == 0:
        phy2log, rank, logcnt = _hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        phy2log, rank, logcnt = _hierarchical(weight, num_replicas, 1, 1, num_gpus)
    max_rep = int(logcnt.max())
    log2phy = np.full((layers, num_log * max_rep), -1, dtype=np.int64)
    np.put_along_axis(log2phy, phy2log * max_rep + rank,
                      np.tile(np.arange(num_replicas, dtype=np.int64), (layers, 1)), axis=1)
    return phy2log, log2phy.reshape(layers, num_log, max_rep), logcnt
