"""Audio backbones (each takes waveforms and carries its own front end) and their heads."""
