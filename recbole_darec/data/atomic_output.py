"""What every dataset converter shares: the target check, the all-or-nothing write, and the command line."""
import argparse
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from recbole_darec.cli_errors import UserError, run_cli


def checked_target(out_dir, dataset_name, force):
    """``out_dir/dataset_name``, refusing a name that is not a plain folder name or a target that exists."""
    if not dataset_name or os.sep in dataset_name or dataset_name.startswith("."):
        raise ValueError(f"invalid dataset name {dataset_name!r}")
    target = Path(out_dir) / dataset_name
    if target.exists() and not force:
        raise FileExistsError(f"{target} already exists; pass --force (force=True) to replace it")
    return target


@contextlib.contextmanager
def atomic_dataset_folder(out_dir, dataset_name, force):
    """Yield an empty hidden folder next to ``out_dir/dataset_name``; when the block succeeds it replaces that
    target (an existing one, only with ``force``, is moved aside first and deleted last). A failure leaves the
    previous target, and no temporary folder, behind."""
    out_dir = Path(out_dir)
    target = out_dir / dataset_name
    made_out_dir = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    # next to the target, so the final rename stays on one filesystem
    tmp = Path(tempfile.mkdtemp(prefix=f".{dataset_name}.tmp-", dir=out_dir))
    old = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the dataset folder should get normal permissions
        yield tmp
        if target.exists():
            if not force:
                raise FileExistsError(f"{target} appeared during conversion; pass --force to replace it")
            old = Path(tempfile.mkdtemp(prefix=f".{dataset_name}.old-", dir=out_dir))
            os.replace(target, old / dataset_name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / dataset_name).exists() and not target.exists():
            os.replace(old / dataset_name, target)  # put the previous version back
        if made_out_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()  # we created it only for this run
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_split_inters(folder, dataset_name, splits):
    """``<name>.<split>.inter`` per split (RecBole's benchmark files) from ``{split: [(user, item, time), ...]}``."""
    for split, rows in splits.items():
        with open(Path(folder) / f"{dataset_name}.{split}.inter", "w", encoding="utf-8") as fh:
            fh.write("user_id:token\titem_id:token\ttimestamp:float\n")
            fh.writelines(f"{user}\t{item}\t{time}\n" for user, item, time in rows)


def converter_main(argv, prog, description, src_help, name_help, convert, extra_args=()):
    """The command line of a converter: ``SRC_DIR DATASET_NAME [extra] [--out-dir DIR] [--force]``.

    ``extra_args`` are ``(flag, kwargs)`` pairs for ``add_argument``; ``convert(args)`` does the work. A bad input
    (ValueError, OSError) is a user error like in every other command line (``cli_errors.run_cli``): one line
    ``<prog>: error: ...`` on stderr and exit status 2; ``--debug`` shows the traceback. Returns the exit status.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("src_dir", help=src_help)
    parser.add_argument("dataset_name", help=name_help)
    for flag, kwargs in extra_args:
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--out-dir", default="dataset", help="parent folder of the dataset (default: dataset)")
    parser.add_argument("--force", action="store_true", help="replace an existing OUT_DIR/DATASET_NAME")

    def run(args):
        try:
            convert(parser.parse_args(args))
        except (ValueError, OSError) as exc:  # the converters name the file or value in every such error
            raise UserError(str(exc)) from exc

    return run_cli(run, prog, argv)
