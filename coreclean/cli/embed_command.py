"""``coreclean embed``: turn a dataset (or your own vectors) into a cached embedding set."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from coreclean.cli.argument_types import non_negative_int, positive_int
from coreclean.embedding.views import TTA_CHOICES
from coreclean.exceptions import CorecleanError

if TYPE_CHECKING:
    from coreclean.embedding.reuse import EmbedResult

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``embed`` sub-command to ``subparsers``."""
    parser = subparsers.add_parser(
        "embed",
        help="embed a dataset's images into a resumable cache",
        description=(
            "Embed SOURCE (a folder with one sub-folder per class, or a CSV manifest path,label[,id]) or a Hugging "
            "Face dataset (--hf) with a "
            "frozen torchvision backbone into --cache DIR. Re-running computes only new or changed images; "
            "a killed run resumes; damaged cache files are repaired. Each dataset gets its own set (key) in the "
            "cache, beside the others. Or bring your own vectors: --features X.npy --manifest m.csv."
        ),
    )
    parser.add_argument("source", nargs="?", metavar="SOURCE", help="image folder tree or CSV manifest")
    parser.add_argument("--cache", required=True, metavar="DIR", help="cache folder (created if needed)")
    parser.add_argument("--backbone", default="resnet18", help="torchvision classification model (default: resnet18)")
    parser.add_argument(
        "--weights", default="DEFAULT",
        help="DEFAULT (torchvision ImageNet weights, downloaded once), a weights enum name, "
             "a local state-dict file, or none (random init)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default: 64)")
    parser.add_argument("--workers", type=non_negative_int, default=None, help="image-decoding processes (default: CPU cores, max 8)")
    parser.add_argument("--image-size", type=positive_int, default=224, help="crop size in pixels (default: 224)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto: bf16 only where validated, else fp32")
    parser.add_argument("--tta", choices=TTA_CHOICES, default="none",
                        help="test-time augmentation: flip stores the mean of the embeddings of each image and its "
                             "mirror (one more forward pass per image; plain vectors already cached are reused); "
                             "a set of its own (default: none)")
    parser.add_argument("--chunk-size", type=positive_int, default=4096,
                        help="vectors per committed chunk (default: 4096); work is also committed every 30 s "
                             "and on Ctrl-C, so a kill loses at most that much")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local (this process) or ray (decode tasks and a model actor pool on a Ray cluster; "
                             'pip install "coreclean[ray]")')
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="with --engine ray: the cluster to join (host:6379); default: start a local Ray")
    hf = parser.add_argument_group("a Hugging Face dataset (pip install 'coreclean[hf]')")
    hf.add_argument("--hf", metavar="PATH_OR_NAME",
                    help="embed this dataset instead of SOURCE: a folder written by save_to_disk, or a name "
                         "datasets.load_dataset loads (HF_HUB_OFFLINE=1 keeps it to the local cache); its image "
                         "bytes are kept in DIR/images")
    hf.add_argument("--split", default=None, help="with --hf: the split to embed (default: train)")
    hf.add_argument("--image-column", default=None, metavar="C",
                    help="with --hf: the datasets.Image column (default: the only one)")
    hf.add_argument("--label-column", default=None, metavar="L",
                    help="with --hf: the ClassLabel column (default: the only one)")
    hf.add_argument("--id-column", default=None, metavar="I",
                    help="with --hf: the column of sample ids (default: the zero-padded row index)")
    byo = parser.add_argument_group("bring your own embeddings")
    byo.add_argument("--features", metavar="X.npy", help="(n, d) array, row i = manifest row i")
    byo.add_argument("--manifest", metavar="M.csv", help="CSV path,label[,id] for --features (paths need not exist)")
    byo.add_argument("--name", default="user", help="prefix of the embedding set's key for --features (default: user)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.features is not None or args.manifest is not None:
        return _run_features(args)
    hf_options = [flag for flag, value in (("--split", args.split), ("--image-column", args.image_column),
                                           ("--label-column", args.label_column), ("--id-column", args.id_column))
                  if value is not None]
    if args.hf is None and hf_options:
        raise CorecleanError(f"{hf_options[0]} goes with --hf PATH_OR_NAME (a Hugging Face dataset); add it or "
                             "drop the option.")
    if args.hf is not None and args.source is not None:
        raise CorecleanError("pass either SOURCE or --hf PATH_OR_NAME, not both.")
    if args.source is None and args.hf is None:
        raise CorecleanError("give a SOURCE folder or CSV manifest to embed, --hf PATH_OR_NAME, "
                             "or --features X.npy --manifest M.csv.")
    if args.address is not None and args.engine != "ray":
        raise CorecleanError("--address joins a Ray cluster: add --engine ray (or drop --address).")
    result = None
    if args.source is not None:  # nothing new: answered without importing torch (coreclean.embedding.reuse)
        from coreclean.embedding.reuse import embed_request, find_up_to_date_set

        result = find_up_to_date_set(args.cache, embed_request(
            args.source, backbone=args.backbone, weights=args.weights, image_size=args.image_size,
            precision=args.precision, device=args.device, tta=args.tta))
    if result is None:
        result = _embed(args)
    skipped = f", {result.n_skipped} skipped (see {args.cache}/errors.csv)" if result.n_skipped else ""
    print(f"embedded {result.n_samples} images ({result.n_computed} newly computed){skipped} -> {result.path}"
          f" (--key {result.key})")
    return 0


def _embed(args: argparse.Namespace) -> EmbedResult:
    """Embed SOURCE or --hf the ordinary way: the model loaded, what is new computed, what is damaged repaired."""
    from coreclean.embedding.embed import embed_dataset

    compute = None
    if args.engine == "ray":
        from coreclean.engines.ray_embed import RayEmbedder

        compute = RayEmbedder(args.address)

    return embed_dataset(
        _read_hf(args) if args.hf is not None else args.source,
        args.cache,
        backbone=args.backbone,
        weights=args.weights,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        image_size=args.image_size,
        precision=args.precision,
        chunk_size=args.chunk_size,
        progress=not args.quiet,
        compute=compute,
        tta=args.tta,
    )


def _read_hf(args: argparse.Namespace) -> Any:
    """The manifest of the ``--hf`` dataset, its images stored in the cache; no ``datasets`` is a one-line error."""
    from coreclean.formats.hf_source import read_hf_dataset

    try:
        return read_hf_dataset(args.hf, args.cache, split=args.split, image_column=args.image_column,
                               label_column=args.label_column, id_column=args.id_column)
    except ImportError as err:
        raise CorecleanError(str(err)) from err


def _run_features(args: argparse.Namespace) -> int:
    if args.features is None or args.manifest is None:
        raise CorecleanError("--features and --manifest go together: pass both (and no SOURCE).")
    if args.source is not None or args.hf is not None:
        raise CorecleanError("pass either SOURCE, --hf or --features/--manifest, not several.")
    from coreclean.embedding.cache import read_cache_info
    from coreclean.embedding.own_features import write_feature_cache

    key = write_feature_cache(args.cache, args.features, args.manifest, name=args.name)
    info = read_cache_info(args.cache, key=key)
    skipped = f", {info['n_skipped']} row(s) skipped (see {args.cache}/errors.csv)" if info["n_skipped"] else ""
    print(f"stored {info['n_samples']} vectors of dimension {info['dim']}{skipped} -> {key}")
    return 0
