"""The demo end to end: on --synthetic data, and on a small CIFAR archive served locally."""

import pytest

from support.cifar_files import cifar10_files, make_tar, md5
from support.http_server import LocalServer, closed_port
from tinytorch.cli.main import main
from tinytorch.demo.train import DemoConfig, run_demo


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
    out = capsys.readouterr().out
    assert code == 2
    assert "tinytorch-data demo --synthetic" in out
    assert "cifar-10-python.tar.gz" in out


def test_bad_model_name():
    with pytest.raises(ValueError, match="'mlp' or 'softmax'"):
        run_demo(DemoConfig(synthetic=True, model="resnet", synthetic_train=10, synthetic_test=10, epochs=1))
