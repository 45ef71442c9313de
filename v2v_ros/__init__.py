"""v2v_ros: V2V-PoseNet 3D hand and body pose estimation from depth images.

The package name is shared with the ROS-generated message package ``v2v_ros.msg``,
which lives in the install prefix (``install/lib/python3.11/site-packages/v2v_ros``).
Extending ``__path__`` lets ``import v2v_ros.msg`` find the generated module when
Python imports this package from the source tree, as long as the prefix is on
``sys.path`` too (``make env`` sets both). See docs/packaging.md.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
