"""Python packaging of ckd_ros (pip / the Makefile). colcon builds the package through CMakeLists.txt."""
from setuptools import find_packages, setup

setup(
    name="ckd_ros",
    version="0.1.0",
    description="CKD RGB + thermal single-object tracking: PyTorch model, tracker, training, "
    "evaluation and a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["ckd_ros", "ckd_ros.*"]),
    package_data={"ckd_ros": ["weights/*.pth.tar", "weights/*.json", "weights/*.status.yaml", "ros/*.xml"]},
    data_files=[
        ("share/ckd_ros", ["package.xml"]),
        ("share/ckd_ros/launch", ["launch/tracker.launch.py"]),
        ("share/ckd_ros/config", ["config/tracker.yaml", "config/tracker.rviz"]),
    ],
    # torch is deliberately not listed: the Makefile installs a CPU or CUDA build as the machine needs,
    # and pip must never replace an existing CUDA torch.
    install_requires=["numpy", "opencv-python-headless", "pyyaml", "tqdm", "matplotlib"],
    entry_points={
        "console_scripts": [
            "ckd = ckd_ros.cli:main",
            "tracker_node = ckd_ros.tracker_node:main",
        ]
    },
)
