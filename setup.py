"""ament_python package definition; also installable with `pip install -e .`."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tpr_vo"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "benchmarks"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml")),
        (
            "share/" + PACKAGE + "/models",
            [f for f in glob("models/*") if not f.endswith(".engine")],
        ),
    ],
    package_data={PACKAGE: ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "PyYAML",
        "scipy",
        "matplotlib",
        "tqdm",
        "scikit-image",
        "threadpoolctl",
    ],
    extras_require={
        "onnx": ["onnxruntime"],
        "train": ["torch", "onnx", "scikit-image"],
        "trt": ["tensorrt", "cuda-python"],
        "ros": ["rosbags"],
        "dev": ["pytest", "ruff", "evo", "scikit-image", "rosbags"],
    },
    zip_safe=True,
    maintainer="tpr_vo developers",
    maintainer_email="dev@tpr-vo.invalid",
    description="Visual odometry with TPR-trained learned local features.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "tpr-vo = tpr_vo.cli:main",
            "vo_node = tpr_vo.ros.node:main",
            "kitti_player = tpr_vo.ros.kitti_player:main",
        ],
    },
)
