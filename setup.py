"""ament_python package: `colcon build` in a ROS 2 workspace, or `pip install -e .` in a venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "edepth_ros"


def files(pattern: str) -> list[str]:
    return sorted(p for p in glob(pattern, recursive=True) if not p.endswith("/"))


def model_data_files() -> list[tuple[str, list[str]]]:
    """models/ keeps its folder structure under share/edepth_ros/models."""
    out: dict[str, list[str]] = {}
    for path in files("models/**/*"):
        if path.endswith((".yaml", ".json", ".onnx", ".safetensors", ".pt", ".csv", ".md", ".txt")):
            folder = "share/" + PACKAGE + "/" + path.rsplit("/", 1)[0]
            out.setdefault(folder, []).append(path)
    return sorted(out.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", files("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", files("config/*.yaml") + files("config/*.xml") + files("config/*.rviz")),
        *model_data_files(),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="edepth_ros developers",
    maintainer_email="edepth@example.com",
    description="Metric monocular depth for ROS 2 from embodied scene geometry and a vision-language network",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "edepth = edepth_ros.cli:main",
            "edepth_node = edepth_ros.ros.node:main",
        ],
    },
)
