"""The audio modality as the core discovers it (entry point ``ssl_core.modalities: audio``)."""

from __future__ import annotations

from typing import Any

from ssl_core.modality import DataBundle, Modality


def _load_data(config: Any) -> DataBundle:
    from ssl_audio.data import load_data

    return load_data(config)


def _data_config() -> Any:
    try:
        from ssl_audio.data import AudioDataConfig
    except ImportError:  # the data module lands with the first recipes
        return None
    return AudioDataConfig()


RECIPES: list = []
# recipes end

modality = Modality(
    name="audio",
    summary="speech and sound on torchaudio (espeak-ng keywords by default; KLettres, Sonic Pi, WAV/FLAC/OGG folders)",
    data_config=_data_config(),
    load_data=_load_data,
    recipes=Modality.recipe_map(*RECIPES),
    backbones={},
)
