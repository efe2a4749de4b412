"""Names and defaults shared by the library and the command line. Torch-free, so that building the
command line (`jukesep --help`) does not load torch."""
STEMS = ("vocals", "drums", "bass", "other")
DEFAULT_MODEL = "default"  # the model shipped in the package
MAX_SHIFTS = 20
REFINES = ("none", "softmask", "wiener")  # see refine.py
DEFAULT_REFINE = "softmask"  # measured best on the valid split (docs/RESULTS.md): +0.37 dB over none, wiener +0.03
