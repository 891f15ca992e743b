"""Trained arms: the learning-rate pilot, family pilots, capped runs and the clause a reason quotes."""

from attnlab.claims import Budget, recipes
from attnlab.claims.arms import LR_GRID, curve_figure, train_arms, training_note

QUICK = Budget.get("quick")


class Runs:
    def __init__(self, best_lr, capped=()):
        self.best_lr, self.capped, self.calls = best_lr, capped, []

    def trained_many(self, cfgs):
        return [self.trained(c) for c in cfgs]

    def trained(self, cfg):
        self.calls.append((cfg.name, cfg.seed, cfg.lr))
        best = self.best_lr[cfg.name] if isinstance(self.best_lr, dict) else self.best_lr
        loss = 1.0 + abs(cfg.lr - best) * 100
        reason = "step_cap" if cfg.name in self.capped else "plateau"
        return {"valid": {"loss": loss, "accuracy": 0.5}, "steps": 100, "stop_reason": reason,
                "valid_curve": {"step": [50, 100], "loss": [loss + 1, loss], "accuracy": [0.4, 0.5]}}


def makers():
    return {p: (lambda s, p=p: recipes.markov(s, QUICK, short_conv=p)) for p in ("", "k", "v")}


def test_the_pilot_picks_the_rate_with_the_lowest_validation_loss_and_reuses_its_run():
    runs = Runs(1e-2)
    arms = train_arms(runs, {"k": makers()["k"]}, QUICK.seeds)
    a = arms["k"]
    assert a.lr == 1e-2 and set(a.pilot) == {f"{x:g}" for x in LR_GRID}
    assert len(runs.calls) == len(LR_GRID) + len(QUICK.seeds) - 1  # the pilot's best run is the first seed's
    assert [c[2] for c in runs.calls[len(LR_GRID):]] == [1e-2] * (len(QUICK.seeds) - 1)


def test_a_family_that_agrees_shares_its_pilot_and_one_that_disagrees_does_not():
    agree = Runs(3e-3)
    arms = train_arms(agree, makers(), QUICK.seeds, family=["", "k"])
    assert {a.lr for a in arms.values()} == {3e-3} and arms["v"].pilot == {}
    assert len(agree.calls) == 2 * len(LR_GRID) + 3 * len(QUICK.seeds) - 2
    split = Runs({"markov-tied-none": 1e-3, "markov-tied-k": 1e-2, "markov-tied-v": 3e-3})
    arms = train_arms(split, makers(), QUICK.seeds, family=["", "k"])
    assert arms[""].lr == 1e-3 and arms["k"].lr == 1e-2 and arms["v"].lr == 3e-3 and arms["v"].pilot


def test_capped_arms_are_counted_and_named_in_the_note():
    arms = train_arms(Runs(3e-3, capped=("markov-tied-k",)), makers(), QUICK.seeds, family=["", "k"])
    assert arms["k"].capped == len(QUICK.seeds) and arms[""].capped == 0
    note = training_note(arms)
    assert "learning rate 0.003" in note and f"at the step cap before a plateau: k {len(QUICK.seeds)}/3" in note
    assert "every run stopped at its plateau" in training_note({"": arms[""]})
    assert "grid's edge" not in note
    edge = train_arms(Runs(1e-2), {"k": makers()["k"]}, QUICK.seeds)
    assert "the pilot's best rate is at the grid's edge for k" in training_note(edge)
    fig = curve_figure("curves", arms)
    assert len(fig.series) == 3 * len(QUICK.seeds) and fig.series[0]["label"].startswith("(lr") is False
