"""`python -m jukesep.web serve ...`: the same as `jukesep serve ...`."""
import sys

from .cli import main

sys.exit(main())
