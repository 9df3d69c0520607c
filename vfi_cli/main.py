"""The `vfi` command group.

Subcommands live in ``vfi_cli/commands/<name>.py`` and are imported only when used (or when
``--help`` lists them); those modules import nothing heavy at module level, so ``vfi --help`` is
instant. User errors (:class:`engine.errors.VfiError`) become one line on stderr and a non-zero exit;
so do OSErrors about a path (or a full disk) that the commands' own checks could not foresee.
"""

from __future__ import annotations

import errno
import importlib
import sys

import click

from engine.errors import VfiError

# command name -> module under vfi_cli.commands exposing a click command named `command`
COMMANDS = {
    "interpolate": "interpolate",
    "probe": "probe",
    "train": "train",
    "bench": "bench",
    "compare": "compare",
    "models": "models",
    "download-weights": "weights",
}


# OSErrors that carry no file name but are the machine's state, not a bug: a full disk or quota.
OS_ERRNOS_WITHOUT_PATH = (errno.ENOSPC, errno.EDQUOT)


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(n for n in COMMANDS if self._module(n) is not None)

    def get_command(self, ctx, name):
        mod = self._module(name)
        return getattr(mod, "command", None) if mod else None

    @staticmethod
    def _module(name):
        if name not in COMMANDS:
            return None
        try:
            return importlib.import_module(f"vfi_cli.commands.{COMMANDS[name]}")
        except ModuleNotFoundError as e:  # a command whose module is not written yet
            if e.name == f"vfi_cli.commands.{COMMANDS[name]}":
                return None
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VfiError as e:
            from vfi_cli.ui import print_error

            for line in getattr(e, "lines", None) or [str(e)]:
                print_error(line)
            ctx.exit(e.exit_code)
        except OSError as e:
            # The commands check their output paths first (engine/paths.py); this is the net for
            # what no check can foresee (a disk that fills up, a folder removed mid-run): one line
            # naming the path, not a traceback. Errors without a path are bugs and propagate.
            if e.filename is None and e.errno not in OS_ERRNOS_WITHOUT_PATH:
                raise
            from vfi_cli.ui import print_error

            where = f": {e.filename}" if e.filename is not None else ""
            print_error(f"{e.strerror or e}{where}; check the path and free space, then run again")
            ctx.exit(1)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vfi", prog_name="vfi")
def cli():
    """vfi: video frame interpolation with a hybrid Mamba2 + gated-attention model."""


def main(argv=None):
    """Entry point. Not Click's standalone mode, so that Ctrl-C exits 130 (Click would say 1)."""
    try:
        rv = cli.main(args=argv, prog_name="vfi", standalone_mode=False)
    except click.exceptions.Abort:  # Click's wrapping of KeyboardInterrupt / EOF at a prompt
        click.echo("interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
