import math
import random

from archsearch.pruning import dominates, keeps, nondominated_ranks, rungs


def test_rungs():
    assert rungs(15) == [1, 3, 9]
    assert rungs(9) == [1, 3]
    assert rungs(20, r0=2, eta=2) == [2, 4, 8, 16]
    assert rungs(1) == []


def test_dominance_and_ranks():
    assert dominates((99.0, 1000), (98.0, 2000)) and not dominates((99.0, 2000), (98.0, 1000))
    assert not dominates((99.0, 1000), (99.0, 1000))
    pts = [(99.0, 5000), (98.0, 2000), (97.0, 6000), (99.5, 9000), (96.0, 9000)]
    assert nondominated_ranks(pts) == [0, 0, 1, 0, 2]


def test_too_few_peers_never_prunes():
    assert keeps((10.0, 9000), [(99.0, 100), (99.0, 200)], min_peers=4)


def test_keeps_the_top_third_by_accuracy():
    peers = [(90.0 + i, 5000) for i in range(8)]        # same size, accuracy 90..97
    assert keeps((98.0, 5000), peers)                    # best accuracy
    assert not keeps((91.5, 5000), peers)                # bottom half
    assert not keeps((93.0, 800), peers)                 # smaller, but a third of its peers do better


def test_synthetic_curves_prune_about_two_thirds_per_rung_and_keep_the_front():
    rng = random.Random(0)
    # 60 trials: final accuracy rises with params and "quality"; curves are noisy and monotone.
    trials = []
    for t in range(60):
        params = rng.randint(1000, 20000)
        quality = rng.random()
        final = 95 + 4 * quality * (params / 20000) ** 0.2
        curve = [final - (final - 80) * 0.6 ** e + rng.gauss(0, 0.1) for e in range(1, 16)]
        trials.append((params, curve))
    reached = {r: [] for r in rungs(15)}
    survivors = []
    for params, curve in trials:  # asynchronous: each decides against those seen so far
        alive = True
        for r in rungs(15):
            point = (curve[r - 1], params)
            if not keeps(point, reached[r]):
                alive = False
            reached[r].append(point)
            if not alive:
                break
        if alive:
            survivors.append((curve[-1], params))
    assert len(reached[1]) == 60
    assert len(reached[3]) <= len(reached[1]) / 3 + 1
    # Later rungs are more lenient: early arrivals compare against few peers (that
    # is asynchronous SHA's trade, no waiting); still well under all of them.
    assert len(reached[9]) < 0.75 * len(reached[3])
    # The true final front of all trials is mostly found by the survivors.
    finals = [(c[-1], p) for p, c in trials]
    front = [finals[i] for i, r in enumerate(nondominated_ranks(finals)) if r == 0]
    found = sum(1 for f in front if any(s[0] >= f[0] - 0.1 and s[1] <= f[1] * 1.1 for s in survivors))
    assert found >= 0.5 * len(front), (found, len(front))


def test_hypervolume_2d():
    from archsearch.pruning import hypervolume
    ref = (90.0, 10000)
    assert hypervolume([], ref) == 0
    assert hypervolume([(95.0, 5000)], ref) == 5 * 5000
    # A dominated point adds nothing; a second front point adds its own strip.
    assert hypervolume([(95.0, 5000), (94.0, 6000)], ref) == 5 * 5000
    assert hypervolume([(93.0, 2000), (95.0, 5000)], ref) == 3 * 3000 + 5 * 5000
    assert hypervolume([(80.0, 100), (99.0, 20000)], ref) == 0


def test_a_front_member_at_the_last_rung_always_continues():
    # Search v3's rung at epoch 9 (params, val acc): six of ten on the front, four places.
    at9 = [(97.76, 4367), (97.16, 2097), (98.76, 9424), (94.92, 1450), (92.74, 1164), (98.86, 5910),
           (99.32, 12444), (99.0, 4653), (98.14, 1823)]
    me = (97.5, 1500)                          # on the front, 7th of 10 by accuracy
    assert not keeps(me, at9)                  # an early rung: cut
    assert keeps(me, at9, last_rung=True)      # the last rung: a front member finishes
    assert not keeps((94.0, 1500), at9, last_rung=True)  # dominated by (94.92, 1450): still pruned


def test_size_peers_compare_a_trial_with_those_of_about_its_size():
    # Search v5's trial 6 at epoch 1: 13,623 params at 98.22%, cut because a 9,402-param
    # trial had 98.38%. Among models of its own size it is the best, so it goes on.
    small = [(98.38, 9402), (98.5, 3000), (98.4, 2500), (98.3, 2000), (98.6, 4000), (98.45, 3500)]
    large = [(97.9, 13000), (98.0, 14500), (97.5, 15000), (97.8, 12500), (98.1, 16000)]
    me = (98.22, 13623)
    assert not keeps(me, small + large, size_peers=11)   # all of them: 8th of 12 by accuracy
    assert keeps(me, small + large, size_peers=5)        # its 5 nearest are the large ones: best of 6
    assert not keeps((97.6, 13623), small + large, size_peers=5)  # 5th of 6 there: cut
    # The neighbourhood is by ratio: 18,500 (1.36x) is nearer to 13,623 than 9,402 (1.45x) is.
    from archsearch.pruning import nearest_in_size
    assert nearest_in_size(me, [(0, 9402), (0, 18500), (0, 2000)], 2) == [(0, 18500), (0, 9402)]


def test_size_peers_prune_about_two_thirds_at_every_size():
    rng = random.Random(1)
    # 90 trials, log-uniform sizes 1k-20k (as SizeSweep lays them out), at the first rung,
    # where a large model is no more accurate than a small one yet (search v5).
    points = [(97 + rng.gauss(0, 0.5), p) for p in (int(1000 * 20 ** rng.random()) for _ in range(90))]
    n_large = sum(1 for _, n in points if n > 8000)      # 23

    def kept(size_peers):
        out = [p for i, p in enumerate(points) if keeps(p, points[:i], size_peers=size_peers)]
        return len(out), sum(1 for _, n in out if n > 8000)
    near, near_large = kept(12)
    assert near < 0.45 * len(points)          # still about a third (early arrivals have few peers)
    assert near_large >= 0.35 * n_large       # 12 nearest in size: 9 of 23, their share
