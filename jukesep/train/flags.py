"""Command-line flags generated from `TrainConfig` and `VQVAEConfig`: one flag per field (the model's
`input_channels` and `sample_rate` excepted, see MODEL_FIXED), its help text the field's trailing
comment, its shown default the chosen preset's value (`jukesep train vqvae --preset small --help`).

Flags default to "not given" (argparse.SUPPRESS), so a config is built from the preset and the flags
actually given, and `--resume` can tell which flags a user set.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import tokenize
import typing

from ..errors import JukesepError
from ..models import VQVAEConfig
from .config import DEFAULT_PRESET, MODEL_FIELDS, MODEL_FIXED, PRESETS, TRAIN_FIELDS, TrainConfig, flag_name, from_flat


def field_comments(cls) -> dict[str, str]:
    """{field: its trailing `# comment`} from the source of dataclass `cls` ({} without the source)."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    names, comments, lines = {f.name for f in dataclasses.fields(cls)}, {}, {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        words = lines.setdefault(token.start[0], [])
        if token.type == tokenize.COMMENT and words[:1] and words[0] in names and words[1:2] == [":"]:
            comments.setdefault(words[0], token.string.lstrip("#").strip())  # the field, not a later local
        elif token.type in (tokenize.NAME, tokenize.OP):
            words.append(token.string)
    return comments


def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _argument_kind(hint) -> dict:
    """argparse keywords for a field of type `hint`."""
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if hint in (int, float, str):
        return {"type": hint, "metavar": hint.__name__.upper()}
    if set(typing.get_args(hint)) == {int, type(None)}:
        return {"type": _optional_int, "metavar": "INT|none"}
    raise TypeError(f"no command-line flag for a field of type {hint}")


def _flags() -> dict[str, tuple[dict, str]]:
    """{flat field name: (argparse keywords, help text)} for every field that is a flag."""
    flags = {}
    for cls, names in ((TrainConfig, TRAIN_FIELDS), (VQVAEConfig, MODEL_FIELDS)):
        hints, comments = typing.get_type_hints(cls), field_comments(cls)
        for name in names:
            if name not in MODEL_FIXED:
                flags[name] = (_argument_kind(hints[name]), comments.get(name, "").replace("%", "%%"))
    return flags


FLAGS = _flags()
DEFAULTS = {**{f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "model"},
            **VQVAEConfig().to_dict()}


def preset_values(preset: str) -> dict:
    """Flat values of every field under `preset`."""
    return {**DEFAULTS, **PRESETS[preset]}


class PresetHelp(argparse.Action):
    """-h/--help whose shown defaults are those of the --preset given before it."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)
        self.flags: dict[str, argparse.Action] = {}
        self.texts: dict[str, str] = {}  # a command's own help for a flag, instead of the field comment

    def show_defaults(self, preset: str) -> None:
        values = preset_values(preset)
        for name, action in self.flags.items():
            given_default = action.default is not argparse.SUPPRESS  # a command's own (parser.set_defaults)
            text = self.texts.get(name, FLAGS[name][1])
            value = action.default if given_default else values[name]
            shown = "" if value == "" else f"default: {value}"  # an empty string is "not set"
            action.help = f"{text} ({shown})" if text and shown else text or shown

    def __call__(self, parser, namespace, values, option_string=None):
        self.show_defaults(getattr(namespace, "preset", DEFAULT_PRESET))
        parser.print_help()
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = (), defaults: dict | None = None,
                  texts: dict[str, str] | None = None) -> None:
    """One flag per field, except `skip`. `parser` must be made with add_help=False. defaults: the
    command's own default values ({field: value}); texts: its own help texts ({field: text})."""
    help_action = parser.add_argument("-h", "--help", action=PresetHelp,
                                      help="show this help (after --preset NAME: with its defaults) and exit")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=argparse.SUPPRESS,
                        help=f"starting values of the fields, which flags override (default: {DEFAULT_PRESET})")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (only --steps, --minutes and --bf16 may change)")
    model = parser.add_argument_group("model", "the architecture of a scratch model (--init scratch)")
    names = [name for name in FLAGS if name not in skip]
    for name in names:
        group = model if name in MODEL_FIELDS else parser
        help_action.flags[name] = group.add_argument(f"--{flag_name(name)}", dest=name, default=argparse.SUPPRESS,
                                                     **FLAGS[name][0])
    help_action.texts.update(texts or {})
    parser.set_defaults(train_flags=tuple(names), **(defaults or {}))  # before the help shows them
    help_action.show_defaults(DEFAULT_PRESET)


def explicit_values(args: argparse.Namespace) -> dict:
    """The flat values of the flags given on the command line."""
    return {name: getattr(args, name) for name in args.train_flags if hasattr(args, name)}


def given_values(args: argparse.Namespace) -> dict:
    """The flat values the command line sets: the given flags over the given --preset's values."""
    preset = PRESETS[args.preset] if hasattr(args, "preset") else {}
    return {**preset, **explicit_values(args)}


def from_arguments(args: argparse.Namespace, **fixed) -> TrainConfig:
    """A new run's config: defaults, then the preset, then the flags given, then `fixed`."""
    explicit = explicit_values(args)
    init = fixed.get("init", explicit.get("init", DEFAULTS["init"]))
    model_flags = [f"--{flag_name(name)}" for name in explicit if name in MODEL_FIELDS]
    if model_flags and init != "scratch":
        raise JukesepError(f"{', '.join(model_flags)} set the architecture of a scratch model; "
                           f"--init {init} brings its own")
    preset = PRESETS[getattr(args, "preset", DEFAULT_PRESET)]
    return from_flat({**preset, **explicit, **fixed})
