"""Names and defaults shared by the library and the command line. Torch-free, so that building the
command line (`jukesep --help`) does not load torch."""
STEMS = ("vocals", "drums", "bass", "other")
DEFAULT_MODEL = "default"  # the model shipped in the package
MAX_SHIFTS = 20
REFINES = ("auto", "none", "softmask", "wiener", "learned")  # see refine.py
# auto: "learned" for a model that has a learned mask (`jukesep train mask`), else "softmask", the
# measured best of the others on the valid split (docs/RESULTS.md): +0.37 dB over none, wiener +0.03
DEFAULT_REFINE = "auto"
