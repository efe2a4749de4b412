"""Command line: a thin shell over `Separator` and the checkpoint functions."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, allocator, separate_cli
from .corpus import cli as corpus_cli
from .errors import JukesepError
from .evaluate import cli as evaluate_cli
from .evaluate import peers_cli
from .train import cli as train_cli
from .web import cli as web_cli


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (the usage is one `--help` away)."""

    def error(self, message: str):
        self.exit(2, f"jukesep: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="jukesep", description="Music source separation with Jukebox's VQ-VAE.")
    parser.add_argument("--version", action="version", version=f"jukesep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    separate_cli.register(sub)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", nargs="?", help="model file or shipped model name")
    info.add_argument("--system", action="store_true",
                      help="describe this machine: CPU, flags, threads, device and the precision auto picks")
    info.add_argument("-d", "--device", default="auto", help="device for --system (default auto)")
    info.set_defaults(func=cmd_info)

    imp = sub.add_parser("import-jukebox", help="convert an official Jukebox vqvae.pth.tar (level 0)",
                         usage="jukesep import-jukebox (SOURCE | --download) OUT [--url URL] [--sha256 HEX]")
    imp.add_argument("paths", nargs="+", type=Path, metavar="SOURCE OUT",
                     help="the official file and the jukesep file to write (only OUT with --download)")
    imp.add_argument("--download", action="store_true",
                     help="fetch OpenAI's vqvae.pth.tar first (resumable; cached in $JUKESEP_CACHE "
                          "or ~/.cache/jukesep)")
    imp.add_argument("--url", default=None, help="download from here instead of OpenAI's address")
    imp.add_argument("--sha256", help="refuse a download whose SHA-256 differs")
    imp.add_argument("--cache", type=Path, help="cache folder for the download")
    imp.set_defaults(func=cmd_import)

    train_cli.register(sub)
    corpus_cli.register(sub)
    evaluate_cli.register(sub)
    peers_cli.register(sub)
    web_cli.register(sub)
    parser.commands = set(sub.choices)
    return parser


def cmd_info(args) -> int:
    from .api import model_path, resolve_device
    from .checkpoint import read_checkpoint
    if args.system:
        from .hardware import describe
        for key, value in describe(resolve_device(args.device)).items():
            print(f"{key + ':':<18}{value}")
        if args.model is None:
            return 0
    elif args.model is None:
        raise JukesepError("give a model file or name, or --system")
    path = model_path(args.model)
    data = read_checkpoint(path)
    state = data["state"]
    print(f"file:     {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"kind:     {data['kind']} (format version {data['format_version']})")
    print(f"params:   {sum(t.numel() for t in state.values() if t.is_floating_point()):,}")
    configs = data["config"].get("stems", {"(model)": data["config"]})
    if data["kind"] == "separator":
        print(f"stems:    {', '.join(configs)}")
        print(f"layout:   {'shared encoder + a head per stem' if 'trunk' in data['config'] else 'per stem (paper)'}")
        mask = "learned (refine auto uses it)" if "mask" in data["config"] else "none (refine auto: softmask)"
        print(f"mask:     {mask}")
    shared = {"shared encoder": data["config"].get("trunk"), "heads": data["config"].get("head"),
              "learned mask": data["config"].get("mask")}
    for name, cfg in {**configs, **{k: v for k, v in shared.items() if isinstance(v, dict)}}.items():
        print(f"config {name}: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    _print_tree(data["metadata"])
    return 0


def _print_tree(values: dict, indent: str = "") -> None:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            _print_tree(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


def cmd_import(args) -> int:
    from . import download
    from .checkpoint import import_jukebox
    if len(args.paths) != (1 if args.download else 2):
        raise JukesepError("give SOURCE OUT, or --download OUT")
    if (args.url or args.sha256 or args.cache) and not args.download:
        raise JukesepError("--url, --sha256 and --cache go with --download")
    out = args.paths[-1]
    if args.download:
        source = download.fetch(args.url or download.JUKEBOX_URL, args.cache, args.sha256)
    else:
        source = args.paths[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    model = import_jukebox(source, out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: Jukebox level-0 VQ-VAE, {n:,} parameters, codebook {tuple(model.quantizer.k.shape)}")
    return 0


# Commands that run models: the process switches to a pooling malloc first (allocator.py); those
# that train let it return freed pages (allocator.py says why).
MODEL_COMMANDS = {"separate", "train", "evaluate", "baselines", "serve"}
TRAINING_COMMANDS = {"train", "baselines"}


def main(argv: list[str] | None = None) -> int:
    """The `jukesep` command; `argv` None means this process's own command line."""
    command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv and argv[0] not in parser.commands and separate_cli.looks_like_input(argv[0]):
        argv = ["separate", *argv]
    args = parser.parse_args(argv)
    if command_line and args.command in MODEL_COMMANDS and _is_own_process():
        allocator.switch(keep_pages=args.command not in TRAINING_COMMANDS)  # returns only when it does not switch
    return run(args)


def _is_own_process() -> bool:
    """Whether this process is the `jukesep` command itself (its console script or `python -m
    jukesep`), which may be re-run; not a notebook or a script that calls `main()`."""
    return Path(sys.argv[0]).name in ("jukesep", "__main__.py") and \
        sys.orig_argv[len(sys.orig_argv) - len(sys.argv) + 1:] == sys.argv[1:]


def run(args) -> int:
    """Run a parsed command with jukesep's error handling: one line, no traceback, exit 1 (130 on Ctrl-C)."""
    try:
        code = args.func(args)
        sys.stdout.flush()  # so that a reader who left shows up here, not in the interpreter's exit
        return code
    except JukesepError as exc:
        print(f"jukesep: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader left (`jukesep info default | head -3`): stop quietly, like cat
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # else the exit's flush fails again
        return 141  # 128 + SIGPIPE, as the shell reports a command killed by it
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"jukesep: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jukesep: interrupted", file=sys.stderr)
        return 130
    finally:
        if "torch.distributed" in sys.modules:  # else no process group can be up (and torch stays unloaded)
            from . import distrib
            distrib.close()


if __name__ == "__main__":
    sys.exit(main())
