"""pip-installable pure-Python part of v2v_ros (library + `v2v` CLI), for users without ROS.

The ROS build (messages, node executable, launch files) goes through CMake/colcon
(CMakeLists.txt); this file only packages the Python sources.
"""

from setuptools import find_packages, setup

setup(
    name="v2v_ros",
    version="0.1.0",
    description="V2V-PoseNet 3D hand and body pose from depth images, with a ROS 2 node",
    packages=find_packages(include=["v2v_ros", "v2v_ros.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1", "numpy>=1.24", "safetensors>=0.4", "scipy", "h5py", "matplotlib",
        "pillow", "PyYAML", "tqdm", "rosbags>=0.10",
    ],
    entry_points={"console_scripts": ["v2v=v2v_ros.cli:main"]},
    package_data={"v2v_ros": ["py.typed"]},
)
