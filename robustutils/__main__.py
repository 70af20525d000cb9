"""The command line: ``python -m robustutils train CONFIG`` or ``python -m robustutils train NAME --profile P``.

``CONFIG`` is a TOML (or ``.json``) file holding a recipe and the run keys (:mod:`robustutils.launch`):
it trains resumably into the config's ``out`` folder, in one process or data-parallel under
``torchrun --nproc-per-node N -m robustutils train CONFIG``. ``NAME`` is a registry name such as
``mnist/linf-0.3``: it trains that model of profile ``P`` into the model cache (or finds it
there), as :func:`robustutils.zoo.get` does for a chapter. Errors in the config, a checkpoint of
another run or an unknown name end the command with status 2 and a message that names the fix.
"""

import argparse
import sys

from . import distributed, io, launch, registry, zoo

PROG = "python -m robustutils"
CONFIG_SUFFIXES = (".toml", ".json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="robustutils from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a recipe from a config file, or a registry entry by name",
        description="Train a config file's recipe resumably (data-parallel under torchrun), "
        "or a registry entry into the model cache.",
    )
    train.add_argument(
        "target",
        metavar="CONFIG_OR_NAME",
        help="a .toml or .json config (recipe keys plus out, amp, progress), or a registry name such as mnist/linf-0.3",
    )
    train.add_argument("--profile", default=None, help="the profile whose registry a NAME is read from (default: ci)")
    train.add_argument("--quiet", action="store_true", help="for a NAME: no progress bars or epoch lines")
    return parser


def is_config(target: str) -> bool:
    """Return True when ``target`` names a config file (a ``.toml`` or ``.json`` suffix), False for a registry name."""
    return target.endswith(CONFIG_SUFFIXES)


def train(target: str, profile: str | None = None, progress: bool = True) -> None:
    """Train ``target``: a config file (:func:`robustutils.launch.run`), or a registry name of
    ``profile`` (default ``"ci"``; :func:`robustutils.zoo.get`, one process). Return nothing; raise
    as those do (a profile given with a config file raises :class:`robustutils.launch.ConfigError`)."""
    if is_config(target):
        if profile is not None:
            raise launch.ConfigError(
                f"--profile picks a registry name's recipe; the config file {target} holds its own: drop --profile"
            )
        try:
            launch.run(target)
        except ValueError as err:  # a value of the config the library refuses (its message names the fix)
            if isinstance(err, launch.ConfigError):
                raise
            raise launch.ConfigError(f"{target}: {err}") from err
        return
    if target.endswith((".yaml", ".yml", ".ini", ".cfg")):
        raise launch.ConfigError(f"{target}: a config file is .toml or .json")
    profile = "ci" if profile is None else profile
    if distributed.launched():
        raise launch.ConfigError(
            f"{target!r} is a registry name, which trains in one process; for data-parallel "
            f"training write a config file (see robustutils.launch) and run torchrun ... "
            f"-m robustutils train CONFIG"
        )
    try:
        registry.recipe(target, profile)  # an unknown name or profile, or a constructed dataset's name
    except KeyError as err:
        raise launch.ConfigError(f"{err.args[0]} (a config file ends in .toml or .json)") from err
    except ValueError as err:
        raise launch.ConfigError(str(err)) from err
    zoo.get(target, profile, progress=progress)
    if progress:
        print(f"{target} (profile {profile}) is in the model cache", flush=True)


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status: 0, or
    2 with a message for a bad config, a checkpoint of another run or an unknown registry name."""
    args = _parser().parse_args(argv)
    try:
        train(args.target, args.profile, progress=not args.quiet)
    except (launch.ConfigError, io.CheckpointError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
