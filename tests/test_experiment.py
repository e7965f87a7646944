import math

import pytest
import torch
from poisonlab.experiment import train_and_score
from poisonlab.triggers import Patch, backdoor


def test_badnets_reaches_high_asr_at_five_percent_and_keeps_clean_accuracy(mnist5k):
    d = mnist5k
    trigger = Patch(3)
    clean = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, trigger, 0, epochs=6, lr=0.05)
    poisoned = train_and_score(backdoor(d.x_train, d.y_train, trigger, 0, 0.05), d.x_test, d.y_test,
                               trigger, 0, epochs=6, lr=0.05)
    assert clean.attack_success_rate < 0.05  # a clean model ignores the patch
    assert poisoned.attack_success_rate >= 0.97
    assert abs(poisoned.clean_accuracy - clean.clean_accuracy) <= 0.02 and clean.clean_accuracy > 0.9


def test_per_epoch_records_both_numbers_after_every_epoch(mnist5k):
    d = mnist5k
    ps = backdoor(d.x_train, d.y_train, Patch(3), 0, 0.05)
    s = train_and_score(ps, d.x_test, d.y_test, Patch(3), 0, model="logreg", epochs=3, lr=0.1, per_epoch=True)
    assert len(s.history.metrics["clean_accuracy"]) == 3 and len(s.history.metrics["attack_success_rate"]) == 3
    assert s.history.metrics["attack_success_rate"][-1] == s.attack_success_rate


def test_same_seed_same_result_and_no_trigger_means_no_asr(mnist5k):
    d = mnist5k
    a = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, model="logreg", epochs=1, lr=0.1, seed=3)
    b = train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, model="logreg", epochs=1, lr=0.1, seed=3)
    assert a.clean_accuracy == b.clean_accuracy and math.isnan(a.attack_success_rate)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_train_and_score_rejects_bad_input(mnist5k):
    d = mnist5k
    with pytest.raises(ValueError):
        train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, model="resnet50")
    with pytest.raises(ValueError):
        train_and_score((d.x_train, d.y_train), d.x_test, d.y_test, epochs=0)
