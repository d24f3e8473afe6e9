"""Per-sample pretext transforms of the 3-D methods: volume fusion, Models Genesis corruptions, the SwinUNETR
pretext tasks."""
