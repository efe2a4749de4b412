"""`jukesep --help` (and every sub-command's) builds its parser without importing torch."""
import subprocess
import sys
import textwrap

HELPS = [["--help"], ["--version"], ["separate", "--help"], ["info", "--help"], ["import-jukebox", "--help"],
         ["train", "--help"], ["train", "foundation", "--help"], ["train", "vqvae", "--help"],
         ["train", "encoder", "--help"], ["train", "shared", "--help"], ["train", "all", "--help"],
         ["train", "vqvae", "--preset", "small", "--help"], ["bundle", "--help"], ["corpus", "--help"],
         ["corpus", "render", "--help"], ["corpus", "stats", "--help"], ["evaluate", "--help"],
         ["baselines", "--help"], ["baselines", "train", "--help"], ["serve", "--help"]]


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_does_not_import_torch():
    out = run_python(f"""
        import contextlib, io, sys
        from jukesep.cli import build_parser, main
        build_parser()
        for argv in {HELPS!r}:
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                try:
                    main(argv)
                except SystemExit as exc:
                    assert exc.code == 0, (argv, exc.code)
            assert "usage: jukesep" in text.getvalue() or argv == ["--version"], argv
        heavy = sorted(m for m in ("torch", "jukesep.api", "jukesep.models.separator", "jukesep.refine")
                       if m in sys.modules)
        print("loaded:", heavy)
    """)
    assert out.strip() == "loaded: []"


def test_console_help_does_not_import_torch():
    out = run_python("""
        import runpy, sys
        sys.argv = ["jukesep", "train", "vqvae", "--help"]
        try:
            runpy.run_module("jukesep", run_name="__main__")
        except SystemExit:
            pass
        print("torch" in sys.modules)
    """)
    assert out.splitlines()[-1] == "False"


def test_lazy_names_still_import():
    out = run_python("""
        import sys
        import jukesep
        assert "torch" not in sys.modules and "Separator" in dir(jukesep)
        from jukesep import Separator
        from jukesep.api import Separator as Original
        assert Separator is Original and jukesep.Separator is Original
        assert jukesep.__all__ == ["Separator", "__version__"]
        from jukesep.models import (VQVAE, BottleneckBlock, Decoder, Encoder, HeadConfig, SeparatorModel,
                                    StemModel, VQVAEConfig)
        from jukesep.train import PRESETS, ParamEMA, StepResult, TrainConfig, train, train_step
        from jukesep.evaluate import bss_eval, evaluate, ideal_ratio_mask, mdx_sdr, mix4
        from jukesep.models import *
        from jukesep.train import *
        from jukesep.evaluate import *
        try:
            jukesep.no_such_name
        except AttributeError:
            pass
        else:
            raise AssertionError("jukesep.no_such_name")
        print("ok")
    """)
    assert out.strip() == "ok"
