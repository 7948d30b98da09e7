"""`tpr-vo bench` on a few KITTI 06 frames: the JSON layout the issue specifies and consistent
numbers (stages add up to the end-to-end time, ratio = ORB FPS / backend FPS)."""

from __future__ import annotations

import json

import pytest

from tpr_vo.cli import main

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def random_onnx(tmp_path_factory):
    from tpr_vo.export.onnx import export_onnx
    from tpr_vo.features.model import TPRNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bench_model") / "net.onnx"
    export_onnx(TPRNet().eval(), path)
    return path


def test_bench_json_and_table(kitti06, random_onnx, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--seq", str(kitti06), "--frames", "4", "--warmup", "1", "--size", "640x192"]
    argv += ["--backend", "onnxruntime", "--threads", "1", "--model", str(random_onnx)]
    assert main([*argv, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "tpr/onnxruntime-cpu" in table and "orb" in table and "640x192" in table
    assert "FPS pre" in table
    report = json.loads(out.read_text())
    assert report["image_size"] == {"width": 640, "height": 192}
    assert report["threads"] == 1 and report["frames"] == 4
    assert report["threads_prefetch"] == 1  # an explicit count is kept for the prefetch pass
    assert "onnxruntime-cuda" in report["skipped"]  # no CUDA provider on this machine
    orb, tpr = report["orb"], report["backends"]["onnxruntime-cpu"]
    assert set(tpr["ms_per_stage"]) >= {
        "decode", "preprocess", "network", "postprocess", "matching", "geometry", "total"
    }  # fmt: skip
    for entry in (orb, tpr):
        ms = entry["ms_per_stage"]
        parts = ms["decode"] + ms["features"] + ms["matching"] + ms["geometry"]
        assert 0 < parts <= ms["total"] + 0.01
        assert entry["fps"] == pytest.approx(1000.0 / ms["total"], rel=1e-3)
        assert entry["peak_rss_mb"] > 50 and entry["frames"] == 4
        assert entry["keypoints_mean"] > 100
        assert 0 < entry["fps_prefetch"] < 1e4  # the second, prefetching pass ran
    split = sum(tpr["ms_per_stage"][k] for k in ("preprocess", "network", "postprocess"))
    assert split <= tpr["ms_per_stage"]["features"] + 0.01
    assert tpr["ratio_to_orb"] == pytest.approx(orb["fps"] / tpr["fps"], rel=1e-2)


def test_machine_info_names_the_gpus_nvidia_smi_lists(tmp_path, monkeypatch):
    """Results say which GPU measured them: the names `nvidia-smi` prints, none without it."""
    from tpr_vo.benchmark import gpu_names, machine_info

    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    assert gpu_names() == [] and "gpus" not in machine_info()
    fake = tmp_path / "nvidia-smi"
    fake.write_text('#!/bin/sh\n[ "$1" = "--query-gpu=name" ] && printf "NVIDIA H200\\n\\n"\n')
    fake.chmod(0o755)
    assert machine_info()["gpus"] == ["NVIDIA H200"]
    fake.write_text("#!/bin/sh\nexit 9\n")  # a failing nvidia-smi (no driver) is no GPU
    assert gpu_names() == []
