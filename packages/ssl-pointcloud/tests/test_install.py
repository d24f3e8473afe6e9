"""open3d imports (it needs Debian's libusb-1.0-0) and its geometry works."""

import numpy as np

import ssl_pointcloud


def test_open3d_farthest_point_sampling():
    import open3d as o3d

    rng = np.random.default_rng(0)
    pts = rng.standard_normal((500, 3))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    down = np.asarray(cloud.farthest_point_down_sample(32).points)
    assert down.shape == (32, 3)
    # every sampled point is one of the input points
    assert np.min(np.linalg.norm(pts[None] - down[:, None], axis=-1), axis=1).max() < 1e-9
    assert ssl_pointcloud.__version__
