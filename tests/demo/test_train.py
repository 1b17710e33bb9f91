"""The demo end to end: on --synthetic data, and on a small CIFAR archive served locally."""

import pytest
from threadpoolctl import threadpool_info

from support.cifar_files import cifar10_files, make_tar, md5
from support.http_server import LocalServer, closed_port
from tinytorch.cli.main import main
from tinytorch.demo import train
from tinytorch.demo.train import DemoConfig, blas_threads, default_workers, run_demo


def blas_thread_counts():
    return [m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"]


def test_synthetic_demo_learns_and_labels_every_line():
    lines = []
    config = DemoConfig(
        synthetic=True,
        epochs=2,
        hidden=32,
        synthetic_train=2000,
        synthetic_test=500,
        progress=False,
        workers=1,
    )
    results = run_demo(config, out=lines.append)
    assert results[-1].test_accuracy > 0.5  # chance is 0.1
    assert all(line.startswith("[synthetic] ") for line in lines)
    assert any("waiting for data" in line for line in lines)
    assert 0 <= results[-1].wait_share <= 1
    assert results[-1].images_per_second > 0


def test_demo_on_a_cifar_archive_from_a_local_server(tmp_path, capsys):
    archive = make_tar(cifar10_files(per_batch=40), folder="cifar-10-batches-py")
    with LocalServer({"/c.tgz": archive}) as server:
        code = main(
            [
                "demo",
                "--root",
                str(tmp_path),
                "--url",
                server.url("/c.tgz"),
                "--md5",
                md5(archive),
                "--epochs",
                "2",
                "--hidden",
                "16",
                "--quiet",
                "--workers",
                "1",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "CIFAR-10 in" in out
    assert "[synthetic]" not in out
    assert "epoch 2/2" in out
    assert "test accuracy" in out


def test_without_network_or_copy_it_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("tinytorch.data.storage.download.BACKOFF_SECONDS", 0.01)
    code = main(
        [
            "demo",
            "--root",
            str(tmp_path),
            "--url",
            f"http://127.0.0.1:{closed_port()}/c.tgz",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "tinytorch-data demo --synthetic" in err
    assert str(tmp_path / "cifar-10-python.tar.gz") in err
    assert "--url URL --md5 MD5" in err
    assert len(err.strip().splitlines()) == 2


def test_bad_model_name():
    with pytest.raises(ValueError, match="'mlp' or 'softmax'"):
        DemoConfig(synthetic=True, model="resnet")


@pytest.mark.parametrize("field", ["epochs", "batch_size", "hidden", "synthetic_train", "blas_threads"])
def test_config_refuses_non_positive_sizes(field):
    with pytest.raises(ValueError, match=f"{field}=.*at least 1, got 0"):
        DemoConfig(**{field: 0})


def test_blas_threads_are_the_cores_the_workers_leave():
    assert blas_threads(workers=1, cores=2) == 1
    assert blas_threads(workers=0, cores=2) == 2
    assert blas_threads(workers=3, cores=8) == 5
    assert blas_threads(workers=4, cores=2) == 1  # never 0
    assert default_workers(cores=1) == 1
    assert default_workers(cores=2) == 1
    assert default_workers(cores=64) == 4


def test_demo_limits_blas_threads_for_the_run_and_restores_them(monkeypatch):
    before = blas_thread_counts()
    inside = []

    def fake_train(config, workers, tag, out):
        inside.extend(blas_thread_counts())
        return []

    monkeypatch.setattr(train, "available_cores", lambda: 3)
    monkeypatch.setattr(train, "_train", fake_train)
    lines = []
    run_demo(DemoConfig(synthetic=True, workers=2), out=lines.append)
    assert inside
    assert all(n == 1 for n in inside)
    assert blas_thread_counts() == before
    assert "loader: 2 thread workers" in lines[0]
    assert "1 thread (cores - workers)" in lines[0]
    assert "machine: 3 cores" in lines[0]


def test_blas_threads_can_be_chosen(monkeypatch):
    inside = []
    monkeypatch.setattr(train, "_train", lambda *a: inside.extend(blas_thread_counts()) or [])
    lines = []
    run_demo(DemoConfig(synthetic=True, workers=0, blas_threads=1), out=lines.append)
    assert inside
    assert all(n == 1 for n in inside)
    assert "(cores - workers)" not in lines[0]
