"""Trained arms: the learning-rate pilot, family pilots, capped runs and the clause a reason quotes."""

from attnlab.claims import Budget, recipes
from attnlab.claims.arms import LR_GRID, LR_LADDER, curve_figure, train_arms, training_note

QUICK = Budget.get("quick")
FULL = Budget.get("full")


class Runs:
    def __init__(self, best_lr, capped=()):
        self.best_lr, self.capped, self.calls, self.heldout = best_lr, capped, [], {}

    def trained_many(self, cfgs, heldout=False):
        return [self.trained(c) for c in cfgs]

    def heldout_loss(self, run):  # the held-out batches agree with validation unless told otherwise
        return self.heldout.get(run["lr"], run["valid"]["loss"])

    def trained(self, cfg):
        self.calls.append((cfg.name, cfg.seed, cfg.lr))
        best = self.best_lr[cfg.name] if isinstance(self.best_lr, dict) else self.best_lr
        loss = 1.0 + abs(cfg.lr - best) * 100
        reason = "step_cap" if cfg.name in self.capped else "plateau"
        return {"valid": {"loss": loss, "accuracy": 0.5}, "steps": 100, "stop_reason": reason, "lr": cfg.lr,
                "valid_curve": {"step": [50, 100], "loss": [loss + 1, loss], "accuracy": [0.4, 0.5]}}


def makers():
    return {p: (lambda s, p=p: recipes.markov(s, QUICK, short_conv=p)) for p in ("", "k", "v")}


def test_the_pilot_picks_the_rate_with_the_lowest_heldout_loss_and_reuses_its_run():
    runs = Runs(3e-3)
    arms = train_arms(runs, {"k": makers()["k"]}, QUICK)
    a = arms["k"]
    assert a.lr == 3e-3 and set(a.pilot) == set(a.pilot_valid) == {f"{x:g}" for x in LR_GRID}
    assert len(runs.calls) == len(LR_GRID) + len(QUICK.seeds) - 1  # the pilot's best run is the first seed's
    assert [c[2] for c in runs.calls[len(LR_GRID):]] == [3e-3] * (len(QUICK.seeds) - 1)
    assert a.record()["pilot_valid_loss"] == a.pilot_valid and a.record()["pilot_heldout_loss"] == a.pilot


def test_the_pilot_chooses_on_heldout_batches_not_on_the_batches_it_is_measured_on():
    runs = Runs(3e-3)
    runs.heldout = {1e-2: 0.5}  # the validation batches favour 3e-3, the held-out ones 1e-2
    a = train_arms(runs, {"k": makers()["k"]}, QUICK)["k"]
    assert a.lr != 3e-3 and a.pilot["0.01"] == 0.5 and a.pilot_valid["0.003"] == 1.0
    assert "chosen on held-out batches" in training_note({"k": a})


def test_a_best_rate_at_the_grids_edge_extends_the_pilot_until_it_is_inside():
    runs = Runs(3e-2)
    a = train_arms(runs, {"k": makers()["k"]}, FULL)["k"]
    assert a.lr == 3e-2 and a.extended == [3e-2, 1e-1]  # 1e-2 at the edge → 3e-2, still at the edge → 1e-1
    assert [c[2] for c in runs.calls[:5]] == [*LR_GRID, 3e-2, 1e-1]
    assert ("learning rate 0.03 for every arm (pilot over {0.001, 0.003, 0.01}; extended past its edge for k to "
            "0.03, 0.1; chosen on held-out batches)") in training_note({"k": a})
    assert "last rate it may try" not in training_note({"k": a})
    low = train_arms(Runs(2e-4), {"k": makers()["k"]}, FULL)["k"]
    assert low.lr == 3e-4 and low.extended == [1e-4, 3e-4]
    end = train_arms(Runs(1.0), {"k": makers()["k"]}, FULL)["k"]
    assert end.lr == LR_LADDER[-1] and end.at_ladder_end
    assert "the last rate it may try won for k" in training_note({"k": end})


def test_the_quick_budget_pilots_on_the_grid_alone_and_names_an_edge():
    runs = Runs(1.0)
    a = train_arms(runs, {"k": makers()["k"]}, QUICK)["k"]
    assert a.lr == 1e-2 and a.extended == [] and a.at_ladder_end
    assert sorted({c[2] for c in runs.calls}) == list(LR_GRID)
    assert "the last rate it may try won for k" in training_note({"k": a})
    low = train_arms(Runs(1e-6), {"k": makers()["k"]}, QUICK)["k"]
    assert low.lr == 1e-3 and low.at_ladder_end
    inside = train_arms(Runs(3e-3), {"k": makers()["k"]}, QUICK)["k"]
    assert not inside.at_ladder_end


def test_a_family_that_agrees_shares_its_pilot_and_one_that_disagrees_does_not():
    agree = Runs(3e-3)
    arms = train_arms(agree, makers(), QUICK, family=["", "k"])
    assert {a.lr for a in arms.values()} == {3e-3} and arms["v"].pilot == {}
    assert len(agree.calls) == 2 * len(LR_GRID) + 3 * len(QUICK.seeds) - 2
    split = Runs({"markov-tied-none": 1e-3, "markov-tied-k": 1e-2, "markov-tied-v": 3e-3})
    arms = train_arms(split, makers(), QUICK, family=["", "k"])
    assert arms[""].lr == 1e-3 and arms["k"].lr == 1e-2 and arms["v"].lr == 3e-3 and arms["v"].pilot


def test_capped_arms_are_counted_and_named_in_the_note():
    arms = train_arms(Runs(3e-3, capped=("markov-tied-k",)), makers(), QUICK, family=["", "k"])
    assert arms["k"].capped == len(QUICK.seeds) and arms[""].capped == 0
    note = training_note(arms)
    assert "learning rate 0.003 for every arm (pilot over" in note
    assert f"at the step cap before a plateau: k {len(QUICK.seeds)}/3" in note
    assert "every run stopped at its plateau" in training_note({"": arms[""]})
    assert "past its edge" not in note
    fig = curve_figure("curves", arms)
    assert len(fig.series) == 3 * len(QUICK.seeds) and fig.series[0]["label"].startswith("(lr") is False
