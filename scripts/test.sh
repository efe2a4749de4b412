#!/usr/bin/env bash
# Installs everything jukesep's tests need on a Debian/Ubuntu machine and runs them:
#   1. the Debian packages, when missing (as root, with sudo, or else a message naming them);
#   2. the Python packages, into .venv;
#   3. pytest (extra arguments are passed on, e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."

# FluidSynth and General-MIDI SoundFonts render the test corpus; Chromium runs the web page tests;
# python3-venv makes the virtual environment on Debian's own Python.
# libjemalloc2: the pooling malloc the model commands switch to (jukesep/allocator.py).
APT=(fluidsynth fluid-soundfont-gm musescore-general-soundfont-small avldrums.lv2-soundfont opl3-soundfont chromium libjemalloc2)
python3 -c "import ensurepip" 2>/dev/null || APT+=(python3-venv)
missing=()
for package in "${APT[@]}"; do
  # (dpkg -s also succeeds for a removed package whose config files remain)
  [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else
    echo "jukesep tests: these Debian packages are missing: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}   (then run this again)" >&2
    exit 1
  fi
  echo "jukesep tests: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
pip install -q torch==2.13.0 -e ".[test,corpus,web]"
# The peer baselines without their dependencies: their torchaudio pin would replace the torch build.
pip install -q --no-deps openunmix==1.3.0 demucs==4.1.0 einops julius
python -m pytest -q "$@"
