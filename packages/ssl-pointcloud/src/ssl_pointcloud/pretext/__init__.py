"""Per-sample pretexts and targets shared by the point-cloud methods: GeoMAE's geometric targets."""

from ssl_pointcloud.pretext.geometric import GeoMAEPretext, geomae_targets

__all__ = ["GeoMAEPretext", "geomae_targets"]
