import pytest
import torch
from poisonlab import parallel
from poisonlab.models import make
from poisonlab.train import fit


def _train(seed: int) -> dict:
    g = torch.Generator().manual_seed(100 + seed)
    x, y = torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = make("cnn", (1, 8, 8), 3, seed=seed)
    fit(model, x, y, epochs=2, lr=0.1, batch_size=16, seed=seed, progress=False)
    return {"seed": seed, "model": model, "out": model(x).detach()}


def test_parallel_runs_give_the_serial_results_in_order():
    torch.set_num_threads(1)
    serial = parallel.run_parallel(_train, [0, 1, 2], workers=1, progress=False)
    forked = parallel.run_parallel(_train, [0, 1, 2], workers=2, progress=False)
    assert [r["seed"] for r in forked] == [0, 1, 2]
    for a, b in zip(serial, forked):
        assert torch.equal(a["out"], b["out"])  # identical arithmetic, one thread each
    x = torch.rand(5, 1, 8, 8)
    assert torch.equal(serial[1]["model"](x), forked[1]["model"](x))  # the model itself came back


def test_closures_and_tuple_jobs_work():
    offset = 10
    assert parallel.run_parallel(lambda a, b: a * b + offset, [(1, 2), (3, 4), (5, 6)], workers=2, progress=False) == [
        12,
        22,
        40,
    ]


def test_a_failing_job_raises_here():
    def fail(i):
        if i == 2:
            raise ValueError("job 2 failed")
        return i

    with pytest.raises(ValueError, match="job 2 failed"):
        parallel.run_parallel(fail, range(4), workers=2, progress=False)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_counts_are_rejected(workers):
    with pytest.raises(ValueError, match="workers"):
        parallel.run_parallel(abs, [1, 2], workers=workers, progress=False)


def test_default_workers_is_between_one_and_four():
    assert 1 <= parallel.default_workers() <= 4


def test_warm_up_leaves_the_random_state_and_the_thread_count_alone(monkeypatch):
    monkeypatch.setattr(parallel, "_WARM", False)
    threads = torch.get_num_threads()
    state = torch.get_rng_state()
    parallel.warm_up()
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert parallel._WARM


def test_run_grid_groups_the_runs_by_setting_in_order():
    grid = parallel.run_grid(
        lambda setting, seed: (setting, seed * 10), ["a", ("b", 2)], [1, 2, 3], workers=2, progress=False
    )
    assert list(grid) == ["a", ("b", 2)]
    assert grid["a"] == [("a", 10), ("a", 20), ("a", 30)] and grid["b", 2] == [(("b", 2), s) for s in (10, 20, 30)]
    serial = parallel.run_grid(
        lambda setting, seed: (setting, seed * 10), ["a", ("b", 2)], [1, 2, 3], workers=1, progress=False
    )
    assert serial == grid
    with pytest.raises(ValueError, match="distinct"):
        parallel.run_grid(lambda s, i: i, [1, 1], [0], progress=False)
    with pytest.raises(ValueError, match="seeds"):
        parallel.run_grid(lambda s, i: i, [1, 2], [], progress=False)
    with pytest.raises(ValueError, match="hashable"):
        parallel.run_grid(lambda s, i: i, [[1], [2]], [0], progress=False)


def test_workers_run_torch_and_numpys_blas_at_one_thread():
    """Two workers each using every core would oversubscribe the CPU."""
    import numpy as np  # noqa: F401  (loads the BLAS library threadpoolctl reports on)
    from threadpoolctl import threadpool_info

    def threads(_):
        return torch.get_num_threads(), max(p["num_threads"] for p in threadpool_info())

    assert parallel.run_parallel(threads, [0, 1], workers=2, progress=False) == [(1, 1), (1, 1)]


@pytest.mark.parametrize("progress", ["yes", 1, None])
def test_progress_must_be_true_or_false(progress):
    with pytest.raises(ValueError, match="^progress must be True or False"):
        parallel.run_parallel(abs, [1, 2], workers=1, progress=progress)


def test_run_parallel_and_run_grid_name_fn_and_their_lists():
    from poisonlab.parallel import run_grid, run_parallel

    for bad in (None, 3, "f"):
        with pytest.raises(TypeError, match="^fn must be a function"):
            run_parallel(bad, [1, 2], workers=1, progress=False)
        with pytest.raises(TypeError, match="^fn must be a function"):
            run_grid(bad, [1], [0], workers=1, progress=False)
    for bad in (None, 3, "ab"):
        with pytest.raises(TypeError, match="^jobs must be a list"):
            run_parallel(abs, bad, workers=1, progress=False)
        with pytest.raises(TypeError, match="^settings must be a list"):
            run_grid(divmod, bad, [1], workers=1, progress=False)
        with pytest.raises(TypeError, match="^seeds must be a list"):
            run_grid(divmod, [1], bad, workers=1, progress=False)
