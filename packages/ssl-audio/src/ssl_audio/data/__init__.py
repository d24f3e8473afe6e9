"""Audio data: spoken keywords generated with espeak-ng (default), KLettres and Tux Paint recordings to
pretrain on, user folders of WAV/FLAC/OGG files, and the frame-level and few-shot probes."""

from ssl_audio.data.audio import AUDIO_EXTENSIONS, fit_center, random_crop, read_audio
from ssl_audio.data.config import DATASETS, AudioDataConfig, cache_root
from ssl_audio.data.folder import load_folder
from ssl_audio.data.frames import FrameProbe, FrameUtterances, build_utterances
from ssl_audio.data.keywords import ACCENTS, VARIANTS, VOCABULARY, KeywordSet, KeywordSpec, generate, load_keywords
from ssl_audio.data.load import keyword_spec, load_data
from ssl_audio.data.sonicpi import SonicPiFewShot, load_sonic_pi

__all__ = [
    "ACCENTS",
    "AUDIO_EXTENSIONS",
    "DATASETS",
    "VARIANTS",
    "VOCABULARY",
    "AudioDataConfig",
    "FrameProbe",
    "FrameUtterances",
    "KeywordSet",
    "KeywordSpec",
    "SonicPiFewShot",
    "build_utterances",
    "cache_root",
    "fit_center",
    "generate",
    "keyword_spec",
    "load_data",
    "load_folder",
    "load_keywords",
    "load_sonic_pi",
    "random_crop",
    "read_audio",
]
